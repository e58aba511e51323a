"""Running one job: payloads, guards, artifacts and the PipelineRunner."""
