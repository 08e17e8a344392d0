"""What users import to write jobs: the `Worker` base class (`perform_async`, `perform_in`,
`perform_at`, retries, cron) and the job `Logger`.

Arguments, queues and cron expressions are checked here, at the call site, so the caller gets
the error. Must not run jobs: running one is `execution/`.
"""
