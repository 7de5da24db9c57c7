"""The federation layer: where a mirrored object comes from.

config.py reads the members and agreements; scheduler.py turns agreements into links and runs them;
mirror.py is one link (pull after the checkpoint, apply policy.py, post, advance the checkpoint in
state.py); status.py reports link health; alliance.py and commands.py are `federation up` and its CLI.
"""
