"""Time-driven job creation: cron dispatch (which schedule fires when, at most once per fire,
overlap rules).

Runs in beat and in the worker's duties process. Must not execute jobs or hold a message.
"""
