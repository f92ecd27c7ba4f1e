"""AWS targets (boto3).  Importing this package registers them after the Kubernetes ones."""
