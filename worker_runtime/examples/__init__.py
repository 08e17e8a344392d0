"""Example workers (a data-processing and a health-check job); `workerpool up` runs these by
default."""
