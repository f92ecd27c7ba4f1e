"""Record: status and conditions, Events, metrics.  Everything a person reads afterwards."""
