// The login page: the token goes in a JSON body (never in an address), the answer sets an
// HttpOnly SameSite=Strict cookie, and the web UI opens.
const form = document.getElementById("login");
const said = document.getElementById("said");
const field = document.getElementById("token");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  said.textContent = "Checking…";
  let answer;
  try {
    answer = await fetch("/api/v1/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: field.value }),
      credentials: "same-origin",
    });
  } catch (error) {
    said.textContent = `StableNew did not answer (${error.message}).`;
    return;
  }
  if (answer.ok) {
    said.textContent = "Logged in.";
    field.value = "";
    window.location.replace("/");
  } else {
    said.textContent = `That is not the token (HTTP ${answer.status}).`;
    field.select();
  }
});
field.focus();
