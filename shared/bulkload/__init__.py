"""Parent-child Bulk API 2.0 loads (seed 002): request, staging, ID maps, reports."""
