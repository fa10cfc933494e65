"""Results of closed waves: built once by the scoring engine, stored, served to dashboards and the export."""
