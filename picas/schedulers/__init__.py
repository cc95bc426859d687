"""Batch systems that run pilots: one module per scheduler, plus the autopilot that keeps them queued."""
