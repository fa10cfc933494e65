"""The org tree."""
