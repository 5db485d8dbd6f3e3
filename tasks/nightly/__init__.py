"""The nightly loop: challenger, champion-vs-challenger comparison, promotion decision, and their Prefect tasks."""
