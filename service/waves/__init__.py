"""Survey waves, their participants and participation."""
