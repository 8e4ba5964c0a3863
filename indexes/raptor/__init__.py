"""RAPTOR summary trees (Sarthi et al. 2024), everything about them that needs no LLM: what a node is
(nodes.py), how a layer is clustered (clustering.py), where trees are kept (store.py) and how they are searched
(search.py). Writing the summaries is the LLM's work: assistant/summaries/build.py."""
from indexes.raptor.nodes import CORPUS_ID, MAX_TREE_LEVEL, TOPIC_LEVEL, hash_ids, node_id, summary_node
from indexes.raptor.search import collapsed_search, fill_budget, leaves_of, parse_levels, resolve_leaf
from indexes.raptor.store import (BuildRunning, TreeLibrary, TreeStatus, TreeStore, build_lock, build_running,
                                  forget_paper)

__all__ = ["BuildRunning", "CORPUS_ID", "MAX_TREE_LEVEL", "TOPIC_LEVEL", "TreeLibrary", "TreeStatus", "TreeStore",
           "build_lock", "build_running", "collapsed_search", "fill_budget", "forget_paper", "hash_ids",
           "leaves_of", "node_id", "parse_levels", "resolve_leaf", "summary_node"]
