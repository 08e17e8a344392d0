"""The original design's example workers; `workerpool up` runs these by default."""
