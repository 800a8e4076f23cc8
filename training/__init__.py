"""Training: trainer, losses, EMA, schedules, recipes."""
