"""The Comet Server: accounts, devices, profiles, policies, job history, live
connections, remote commands and storage buckets, on PostgreSQL.

Stateless apart from PostgreSQL and bucket storage, so several instances can run
behind one load balancer. Must not import the agent's engine or Qt.
"""
