"""Pilots: units that try something from a start date, and its measured effect against comparison units."""
