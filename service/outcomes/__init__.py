"""Mobility outcomes: HR's counts per unit and period, and their guarded KPIs beside the survey."""
