"""What the runtime adds to Flower, the monitoring web application `workerpool flower` runs.

Reads and acts through `store/`, the same functions the CLI calls. Must not start workers.
"""
