"""Act: one adapter per kind of target, all behind `Target`, found through one registry."""
