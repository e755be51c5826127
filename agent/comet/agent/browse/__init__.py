"""Browsing and searching snapshot contents without restoring them: ``list_dir`` reads
one tree per path component, ``find`` walks trees lazily. Reads the repository only;
must not import grpc, asyncio or Qt, and never prints.
"""

from comet.agent.browse.entry import Entry
from comet.agent.browse.listing import list_dir
from comet.agent.browse.search import FindQuery, find

__all__ = ["Entry", "FindQuery", "find", "list_dir"]
