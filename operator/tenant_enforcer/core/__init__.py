"""The pure core: decisions computed from typed inputs and an injected `now`; no I/O, no clock."""
