"""Selection policies: which candidate pool (arm) serves a request."""
