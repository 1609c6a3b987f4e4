"""`cachefleet demo`: the application patterns at work against a real Multi-AZ group.

The demo is an application of `cachefleet_client`, exactly as a user would write one: it talks to
the server only through the ElastiCache API and Redis, and imports nothing of the server.

- `runner`: the whole run (server, group, database, instances, two workload runs, report).
- `app`: the shop (Starlette) with cache-aside reads, write-through writes, sessions, leaderboard.
- `instance`: one app instance as a process (`python -m cachefleet.demo.instance`).
- `database`: the products/users database, SQLite or PostgreSQL, with a query counter.
- `workload`: the seeded, replayable request script and its measurements.
- `fleet`: the API calls (group lifecycle, roles, TestFailover); `processes`: children by PID.
- `report`, `narrate`: the figures (JSON or rich tables) and the progress on stderr.
"""

from cachefleet.demo.fleet import ApiAccess, DemoError
from cachefleet.demo.narrate import Narrator
from cachefleet.demo.processes import StartFailed
from cachefleet.demo.report import Report
from cachefleet.demo.runner import DemoOptions, run_demo
from cachefleet.demo.workload import WorkloadSpec

__all__ = ["ApiAccess", "DemoError", "DemoOptions", "Narrator", "Report", "StartFailed", "WorkloadSpec", "run_demo"]
