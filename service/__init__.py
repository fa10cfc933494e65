"""Peil: the HTTP service, the web form, storage and the `peil` command."""
