"""The transport and the intake: how a job slot takes a message from Redis, and the envelope
checks that refuse (to the dead set, with a reason) what kombu could not decode or run.

Must not run jobs or know about slots beyond reporting each fetch.
"""
