"""Integration tests of scheduled jobs (the schedule set) and exactly-once cron."""
