"""Events, the EventBus, the lifecycle logger and the JSONL log."""
