"""What a job is: JobSpec, Job, JobStatus, prompt packs, and the CancelToken every layer honours."""
