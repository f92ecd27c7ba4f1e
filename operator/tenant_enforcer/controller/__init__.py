"""Controller: kopf glue, the per-tenant reconcile, the work queue and due-time scheduler."""
