"""Promotion of a build from one stream to another: when it is due (:mod:`.check`, pure) and
the promotion commit written into the fleet repo (:mod:`.commit`).
"""
