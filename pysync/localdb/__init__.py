"""The embedded development database: a private PostgreSQL cluster that looks like Supabase."""

from pysync.localdb.cluster import ClusterStatus, LocalCluster
from pysync.localdb.database import MAIN_DATABASE, TEMPLATE_DATABASE, LocalDatabase

__all__ = ["MAIN_DATABASE", "TEMPLATE_DATABASE", "ClusterStatus", "LocalCluster", "LocalDatabase"]
