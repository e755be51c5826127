"""Browsing and searching snapshot contents without restoring them: ``list_dir`` reads
one tree per path component, ``find`` and ``list_tree`` walk trees lazily. Reads the
repository only; must not import grpc, asyncio or Qt, and never prints.
"""

from comet.agent.browse.entry import Entry, EntryColumns
from comet.agent.browse.listing import list_dir
from comet.agent.browse.search import FindQuery, find, list_tree

__all__ = ["Entry", "EntryColumns", "FindQuery", "find", "list_dir", "list_tree"]
