"""What a user gets: whole sync runs through the real orchestration, against the fetch floor.

The project's own `function_app.py` on the local host (`devhost/`, durable state in
Azurite), a PostgreSQL source (psqlODBC) with an asset changes view shaped like seed 000's
(9 columns, three rows per timestamp, index on (ChangeTimestamp, Asset_ID)). Each run is
started with `POST /api/sync/asset-changes/run` and timed until the run
records its end (EndedAt in the runs table). Printed, all measured in this one run:

1. the floor: a bare pyodbc `fetchmany(5000)` of the same view, rows/s;
2. whole runs into an HTTP endpoint that only counts the rows it receives, and into the
   Salesforce simulator's sObject Collections, at 500- and 5,000-row pages: rows/s and
   the ratio to the floor: medians of `--repeat` runs, each paired with a floor measured
   just before it; each run checked for nothing lost and nothing duplicated;
3. a backlog of `--backlog-rows` rows (default 200,000; 0 skips it) into the simulator
   through sObject Collections (5,000-row pages, no backlog threshold) and through the
   Bulk API 2.0 backlog mode (the default threshold, part size and poll interval),
   `--repeat` pairs run side by side: rows/s, the ratio to the floor, the host's and the
   simulator's CPU seconds, and the median of the pairs' Bulk / Collections ratios.

    python benchmarks/sync_end_to_end.py [--rows 50000] [--page-sizes 500,5000]
        [--sinks http,salesforce] [--backlog-rows 200000] [--repeat 3] [--baseline DIR]
        [--partitions 1] [--worker-processes 1]

`--partitions N` sets SYNC_ASSET_CHANGES_PARTITIONS (pages in N key partitions side by
side); `--worker-processes N` passes FUNCTIONS_WORKER_PROCESS_COUNT=N to the host, which
runs activities in that many worker processes where it supports the setting.

Run as `make bench` runs it (none of --warm, --setting, --partitions, --worker-processes),
it also measures a job set up for throughput as a scheduled sync finds its host: 2 key
partitions in 2 worker processes, each timed run on a host that synced once already, at
500-row pages, both sinks ("scaled out" lines).

With `--baseline DIR` (an app tree, e.g. `git archive main | tar -x -C DIR`), runs of that
tree and of this one alternate on the same services instead, and their medians of wall
time and host CPU are compared.

Each line also gives the host's CPU seconds for the run (median), which the load of other
processes moves much less than wall time on a shared machine.

Backlog, measured (issue 14's third round, 200,000 rows, load average 8-18 on 2 cores, so
wall times are loose): before, the stage activity read all rows into one CSV, split it,
copied it to Blob Storage, and only then one job was created, so Salesforce started after
staging ended: Bulk / Collections 0.52x in a quieter run (17.2 s vs 8.9 s). After (parts of
50,000 rows submitted while the next is read, CSV written 1,000 rows per csv call, first
poll 0.5 s after staging): 1.04x, median of 3 pairs (1.04, 0.94, 1.48); host CPU per run
3.4 s (Collections 5.6 s), simulator CPU 6.2 s (5.6 s): the simulator's work is now the
larger share of a Bulk run.

Measured (issue 14's second round; 2 cores shared with other test suites, load average
4-16, medians of 3): before, ratios 0.198-0.220 (HTTP, 500-row pages), 0.294-0.317 (HTTP,
5,000), 0.071-0.076 (simulator, 500), 0.064-0.098 (simulator, 5,000); after 0.227, 0.331,
0.111, 0.111. Before and after interleaved on the same services: host CPU per 50,000-row run
0.90 -> 0.80 s (HTTP, 500), 0.72 -> 0.72 s (HTTP, 5,000), 1.61 -> 1.28 s and simulator CPU
1.50 -> 1.02 s (simulator, 500), wall 3.7 -> 2.9 s. Not reached: 0.4x and 0.2x. Where a
run's time goes now (HTTP, 500-row pages, sampled): about 0.2 s that do not depend on the
rows (0.15 s of host CPU: the POST handler ~50 ms, begin ~40 ms, the activities' dispatch
~15 ms each, end ~15 ms); the read-ahead thread spends ~0.25 s converting rows in pyodbc
(the floor's whole cost), ~0.1 s masking and mapping, ~0.08 s in queries; the page thread
~5 ms a page delivering (JSON 0.9 ms, requests ~1 ms, a stat of REQUESTS_CA_BUNDLE when it
is set ~1 ms, the endpoint reading and parsing the page ~2 ms), and it is now the slower of
the two. The host's CPU alone (0.8 s) exceeds the 0.63 s that 0.4x of a 200,000 rows/s
floor allows.

Third round (SYNC_PAGES_IN_FLIGHT, default 4: pages delivered side by side, settled in
order; the HTTP sink reads proxies and CA bundle from the environment once). Before (main)
and after runs alternated on the same services, 500-row pages, medians of 5: at load
average 9-11, HTTP 0.192 -> 0.284 (one page in flight 0.237, two 0.265), simulator 0.126
-> 0.162 (two 0.153); at load average 8-15, HTTP 0.240 -> 0.243, simulator 0.140 -> 0.147.
Single runs on a quiet moment reach 0.40-0.45 (HTTP) before and after alike. Host CPU per
run is unchanged (HTTP 0.84 -> 0.85 s) or higher (simulator 1.37 -> 1.54 s: more threads
switching), so the gain is overlap only, and it vanishes when the two cores are busy with
other work. Where the CPU goes (py-spy --gil, HTTP, 500-row pages): masking and mapping
~0.16 s per 50,000 rows (dict per row, then the record), JSON 0.09 s, requests ~0.5 ms a
page, the driver's conversion, and ~0.15 s fixed per run. Not reached: 0.4x and 0.2x.

Fourth round (masking built once per query's columns, a page mapped in one comprehension,
the lease read beside the instance's status): mask and map of 50,000 rows 135 -> 115 ms
CPU in a paired micro-measure; with `--baseline` (main), HTTP sink, 500-row pages, 5 runs
each alternated, load average 10-12: wall 2.37 -> 2.36 s, host CPU 0.81 -> 0.83 s, i.e. no
difference the noise of a shared machine lets one see. Not reached: 0.63 s.

Fifth round, the cost of a run that does not depend on its rows (each timed run is a new
host process, so it also pays the process's first table creations and source login):
the tick reads the lock and tick-counter rows in one query, end the watermark and the
lock, begin reads the watermark while the source is asked, the tick's storage calls run
off the event loop (the run's first episode no longer waits for the tick counter). 1-row
runs on the local host, paired with main, medians of 13, load average 7: whole run 236 ->
214 ms, POST to begin's start 20 -> 11 ms, begin 49 -> 42 ms, host CPU 0.11 s both. The
same steps in one process (fake durable client, new tables and login each time, medians
of 48): tick 20 -> 15 ms, begin 33 -> 28 ms, end 17 -> 12 ms, table creation 18 -> 19 ms
(Azurite answers the three side by side no sooner), 116 -> 111 ms in all, 37 ms CPU both.
50,000 rows, HTTP sink, 500-row pages, 7 runs each alternated, load average 7-8: wall 1.58
-> 1.49 s, host CPU 0.75 -> 0.74 s; 0.289x the floor (5 runs, floors 98-168k rows/s).
What stays fixed is what a guarantee needs (lease, claim, runs row, checkpoint, end,
release: 11 storage round trips, 2 queries) and the local host's own engine, which is
most of the 0.11 s of CPU. Not reached: 0.63 s.

Sixth round, where the host's CPU goes (HTTP sink, 500-row pages, 50,000 rows, 0.62-0.68 s
per run; py-spy --gil over 5 runs, thread CPU clocks and gc callbacks in the page loop,
micro-measures of the same functions on the same rows): the driver's fetch 0.20 s (the
floor's own cost, in the run as alone), masking 0.05 and mapping 0.07-0.10 s, JSON 0.07 s,
requests 0.03-0.04 s, garbage collection 0.04 s (64 collections, one full), thread
hand-offs 0.03 s, checkpoints 0.01-0.02 s, logging nothing visible; the local host's engine,
the POST and begin/end about 0.1 s, nearly all outside the page activity (POST to its start
66 ms, its end to EndedAt 12 ms; the page activity is 0.65-0.72 s of a 0.75-0.8 s run). The
read-ahead thread (fetch, then mask and map) is busy 0.45-0.6 s of that activity: its fetch
takes 0.31-0.44 s of wall for 0.20 s of CPU, waiting for the GIL the delivery threads hold.
Tried and left out, no change: masking and mapping on the delivery threads (wall 0.79 ->
0.80 s, CPU 0.65 -> 0.65 s, 4 pairs alternated), a 0.5 ms GIL switch interval. One Python
process needs ~0.55 s of CPU per 50,000 rows at the least (fetch, mask, map, JSON, send),
more than the 0.54 s of wall that 0.4x of a 230,000 rows/s floor allows, so the 0.4x target
needs the rows split across processes (key-range partitions, each its own activity and
worker process). Measured: the same page pipeline (same functions, no engine) over 50,000
rows in 1 process 0.49 s CPU, in 2 processes taking half the keys each 0.25 + 0.25 s; the
wall gain needs free cores (at load average 7-8: 0.79-1.63 s vs 0.74-1.49 s). Splitting one
activity's pages among processes instead does not pay: pickling 500-row pages costs 0.11 s
per 50,000 rows, as much as the masking and mapping it would move.
Salesforce sink (host CPU 1.08-1.11 s, simulator about as much): requests scanned the whole
environment for proxies on every call (0.1-0.2 ms x 300 calls) and every record was copied
field by field before JSON; now the environment is read once per origin and JSON-safe
records are sent as they are. Paired with main, 5 runs each alternated, load average 6-7:
host CPU 1.11 -> 0.99 s (0.89x; another pairing 1.08 -> 0.99 s), wall 2.50 -> 2.44 s and
2.63 -> 2.21 s; HTTP sink unchanged (0.64 -> 0.66 s). With --warm (a host that synced
once already) host CPU is 0.62 s (HTTP) and 0.97 s (simulator): a new process's first
imports, login and sessions are ~0.03-0.05 s of a run. Not reached: 0.4x and 0.2x.

Seventh round, CPU per record of the simulator sink (both processes; 50,000 rows, 500-row
pages, 300 Collections calls). The simulator is a threaded Werkzeug server (http.server
underneath); it spent ~13.6 us a record: about 0.09 s per run in the HTTP layer (~0.3 ms a
call, a fifth of it the standard library's header parsing), JSON in and out ~0.08 s, and
the rest in the upsert path: the id checksum (a generator per chunk, its LRU cache missed
by every new id) 13%, value conversion through a chain of type tests, four unique-index
look-ups a record each allocating a tuple and an empty dict. Now the checksum is one
translation and three table look-ups, a plainly named field's value goes straight to a
converter per field type (a date text parsed once), the look-ups allocate nothing, a
call's external ids are lowered once; the sink asks `upsert_failures` (no outcome object
per record written) and encodes with one JSON encoder. This tree and main alternated, 3
pairs of 3 runs each, load average 2-3: simulator CPU 0.83 / 0.85 / 0.82 -> 0.66 / 0.66 /
0.64 s, host CPU 0.97 / 0.98 / 0.96 -> 0.90 / 0.89 / 0.87 s, ratio 0.137 / 0.151 / 0.143
-> 0.150 / 0.171 / 0.178 (33,000-37,800 -> 37,300-43,300 rows/s). Left: the simulator's
HTTP layer ~0.3 ms a call, the sink's requests stack ~0.5 ms a call (a tenth of it parsing
the answer's headers). Not reached: 0.2x, which needs the host's rows split across
processes as well.

Eighth round, the fixed cost of a run (2 key partitions, 2 worker processes, HTTP sink,
500-row pages). Counted in one process (begin and the partitions' end on PostgreSQL and
Azurite, storage requests and source statements counted, medians of 10): begin ran the
probe, then asked the key column's type on a new connection (a login every run), then the
upper bound: now the probe itself tells the types, on a cached connection (3 statements
and a login -> 2, 48 -> 12 ms); the join then the end read the watermark, the partitions,
the watermark and lock, the partitions again (4 queries, then 3 writes) in two
activities: now one activity (`sync_end_partitioned_run`, for runs started by this
version) reads the watermark, the lock and the partitions in one query (7 storage round
trips -> 4, 50 -> 18 ms); an unpartitioned run's end reads its rows in one query too. The
backlog count (Salesforce sink) is asked while the watermark is claimed; the jobs are
built once per process. Paired with main (`--baseline`, alternated, 7 pairs, load average
3-6 with another helper's benchmarks running), per step from the host logs (medians, ms):
warm: POST 28.5 -> 25.5, begin 32.5 -> 18, join + end 19.5 + 17.5 -> 23.5, the engine's
hops between steps 51 -> 37.5 (three instead of four), all but the page activities 147
-> 118.5; wall 0.72 -> 0.67 s (0.94x), host CPU 0.76 -> 0.70 s (0.92x); a second pairing:
begin 27 -> 18.5, join + end 17.5 + 13.5 -> 18.5, hops 47 -> 33.5, all but the pages 133 ->
96.5, host CPU 0.73 -> 0.71 s, wall 0.57 -> 0.59 s (walls 0.5 or 0.8 s as the other load
came and went: the fixed steps' gain is below that noise). Cold (a new host
process per run): begin 66 -> 60.5, join + end 23 + 16.5 -> 23, all but the pages 211.5
-> 172.5; wall 0.93 -> 0.90 s, host CPU 0.83 -> 0.80 s. One partition, warm: end 16.5 ->
12, all but the pages 107.5 -> 101.5. This tree alone, warm, load average 2.5: 0.401x
the floor (0.453, 0.379, 0.401, 0.380, 0.423; floors 221-251k rows/s), a run 0.54 s of
which the page activities 0.45 s and the rest 92 ms (POST 22, begin 17.5, join and end
18, hops 32). Left: the engine's hops (another helper's), the writes a guarantee orders
(lease, claim, runs row, checkpoint, join, runs row, release), and on a new process its
first login, table creations and session (only what the real host would pay too).

Ninth round, CPU per sObject Collections call and per record on both sides (2 key
partitions, 2 worker processes, --warm, 50,000 rows, 500-row pages: 300 calls). The
client's upsert went through `Session.request`, which merges the session's headers,
cookies, hooks and environment settings into every request anew (requests' runtime protocol
checks, URL parsing: ~0.2 ms a call); now a call with a body of bytes is sent from a
request prepared once per method, URL, headers and token (a session holding cookies is sent
as before), and a page without repeated external ids is one round found in one pass. The
simulator stores a text value for a text field within its length, and a float for a number
field, as it came, without the converter's calls, and an upsert no longer checks again the
external id it has just looked up. Paired micro-measures: the sink against a simulator
process, 300 calls of 200 records, client CPU 0.42 / 0.43 -> 0.35 / 0.32 s; the simulator's
WSGI app alone (no HTTP), 50,000 records upserted, 0.63 / 0.66 / 0.64 -> 0.60 / 0.64 / 0.61
s (its value checks 0.11 / 0.10 -> 0.08 / 0.09 s). Whole runs with --baseline (main), 5
each alternated, two pairings at load average 3-7 (another helper's tests on the same 2
cores): host CPU 1.03 -> 0.97 s (0.94x) and 0.97 -> 0.92 s (0.95x); simulator CPU 0.71 ->
0.70 s and 0.67 -> 0.68 s (no change the noise lets one see); wall 1.53 -> 1.93 s and 1.70
-> 1.68 s (runs 1.1-2.5 s both: noise). Plain runs (medians of 5), main and this tree in
turn: main 0.195x (44,400 rows/s, host CPU 0.95 s, simulator 0.71 s, load average 1-2);
this tree 0.194x (0.207, 0.194, 0.209, 0.191, 0.186; 48,600 rows/s, host CPU 0.85 s,
simulator 0.63 s, load average 2-4, floors 241,000-253,000 rows/s against main's
216,000-246,000); main again 0.173x (33,000 rows/s, host CPU 1.03 s, simulator 0.74 s, load
average 2-5); this tree under heavier load 0.162x and 0.170x: the other helper's load moves
the ratio more than this round does. Left, per call: the simulator ~0.31-0.35 ms of CPU
(1,500 calls of GET /services/data or of a 1-record upsert), of which the standard
library's header parsing is ~24 us (h11 parses the same head in as long, so no library is
cheaper there), the rest Werkzeug's environ, routing, request and response objects and
thread hand-offs; the client ~0.35 ms in requests' send path (adapter, urllib3, cookie
extraction twice, the answer's headers). Per record: the simulator ~11 us (value checks,
the upsert race's and the unique index's look-ups, new ids, JSON), the client ~4 us (a dict
per record for its `attributes`, the JSON-safety scan, JSON both ways, the calls' threads).
Not reached: 0.2x.

Tenth round, checkpoints and where the runs stand (main with the eighth and ninth rounds,
quiet machine, load average 0.1-2.6, floors 201-254k rows/s). A partition's checkpoint is
two storage round trips (its owner read, its row) and a log line; at 10 pages a checkpoint
a 2-partition run wrote ten. Warm, 2 partitions, 2 worker processes, HTTP sink,
SYNC_CHECKPOINT_PAGES 10 against 50 alternated, 3 runs each twice: 0.369 / 0.383 against
0.461 / 0.471 x the floor. The default is now 50, the 1-second interval unchanged, so a
sink at Salesforce's pace still gets a checkpoint each second. Then, medians of 3:
HTTP sink, 2 partitions, 2 worker processes: 0.449x warm (0.443, 0.449, 0.455), 0.371x on
a new host per run (0.349, 0.377, 0.371); 1 partition: 0.333x warm, 0.299x new host.
Simulator, 2 partitions, 2 worker processes, warm: 0.195x, 0.200x, 0.210x, 0.204x, 0.200x
in five sets of 3 runs (host CPU 0.84-0.93 s, simulator 0.66-0.71 s: the run is bound by
the two cores); new host 0.187x. Backlog of 200,000 rows, Bulk API against Collections
0.76x (pairs 0.73, 0.76, 0.78; Collections 50,794 rows/s, Bulk 37,528).

Eleventh round, CPU per record on both sides (2 key partitions, 2 worker processes, --warm,
50,000 rows, 500-row pages: 300 Collections calls). Measured first (py-spy, cProfile): the
simulator's WSGI app alone upserting 50,000 records (no HTTP) 0.50-0.52 s, of which
reading the requests' JSON 9%, the answers' `json.dumps` 7% (117 us for 200 results), new
ids 5% (1.1 us each), the value checks 13-15%, the store 12%, the upsert race's look-ups
6%; the client's `upsert_failures` against a simulator process (250 calls of 200, 4 in
flight) 0.38-0.41 s, of which JSON encoding 15% (330 us a call: half of it the repr of
400 floats, a quarter the records' `attributes`), the copy with `attributes` and the
JSON-safety scan 10% (105 us a call), decoding the answer 8.5% (80 us), requests, urllib3
and http.client ~40% (the answer's head through the email parser ~9%). Changed, in the
simulator only: a new id writes out only its last two base-62 digits and their checksum
chunk (1.1 -> 0.45 us); the answer's successes are written as `json.dumps` writes them,
without the encoder (117 -> 27 us a call; a test compares the text); the race's second
look-up of each new external id is skipped when the org's change count (kept under its
lock) shows that no write came in between; text and float values are found by name in
two tables the object keeps, a date as text goes straight to the cached parse. Paired:
the app alone 0.50-0.51 -> 0.42-0.44 s; through HTTP, simulator CPU 0.71-0.74 -> 0.63 s,
the client's unchanged (0.38-0.41 s). Whole runs, main's and this tree's benchmark in turn
(each its own simulator; --baseline shares this tree's simulator, so it shows the host
only: host CPU 0.97 -> 0.97 s), medians of 5: simulator CPU 0.73 -> 0.63 s and 0.76 ->
0.62 s, host CPU 0.96 -> 0.93 s and 1.02 -> 0.93 s, all processes' CPU 1.90 -> 1.78 s and
2.07 -> 1.79 s; 0.200x -> 0.225x the floor (load average 2-4), 0.148x -> 0.167x (5-7,
another helper's CI run). Left alone on the client: nothing per record that keeps the
body Salesforce reads (the floats' repr, JSON both ways, `attributes` in each record);
an encoder without its circular-reference check would save 30 us a call (~0.5% of a run).

Standing after the eleventh round (quiet machine, load average 0-1.4, medians of 3, floors
210-251k rows/s): as `make bench` runs it (1 partition, a new host per run) HTTP 0.298x,
simulator 0.189x; scaled out (2 partitions, 2 worker processes, a host that synced once)
HTTP 0.443x (0.443, 0.426, 0.451), simulator 0.225x (0.225, 0.216, 0.233), and in two more
sets 0.207x and 0.238x; scaled out on a new host per run, simulator 0.213x (HTTP 0.371x
before this round, which does not touch it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402
from azure.data.tables import TableServiceClient  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from benchmarks.asset_source import bare_fetch, load_assets  # noqa: E402
from benchmarks.process_cpu import cpu_seconds  # noqa: E402
from devhost.testing import RunningHost, start_host  # noqa: E402
from devtools import services  # noqa: E402
from sfsim.server import KeepAliveHandler, close_open_connections  # noqa: E402

JOB = "asset-changes"


class QuietHandler(KeepAliveHandler):
    """Connections kept alive, as a Process API behind a gateway keeps them."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class CountingEndpoint:
    """An HTTP sink target that keeps each batch it accepts, and counts its rows and
    distinct ids once the run ended: the target's work is not the app's, and parsing the
    batches during the run would take the machine's cores from the run it times (on Azure
    the target runs elsewhere)."""

    def __init__(self) -> None:
        self._bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self, threaded=True,
                                   request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/assets"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        body = Request(environ).get_data()
        with self._lock:
            self._bodies.append(body)
        return Response('{"errors": []}', mimetype="application/json")(environ, start_response)

    def counted(self) -> tuple[int, int]:
        """(rows received, distinct asset ids) of the batches kept since the last reset."""
        with self._lock:
            bodies = list(self._bodies)
        ids: set[int] = set()
        rows = 0
        for body in bodies:
            records = json.loads(body)["records"]
            rows += len(records)
            ids.update(record["assetId"] for record in records)
        return rows, len(ids)

    def reset(self) -> None:
        with self._lock:
            self._bodies = []

    def stop(self) -> None:
        self._server.shutdown()
        close_open_connections(self._server)


def fetch_floor(connection_string: str, view: str) -> float:
    bare_fetch(connection_string, view)  # warm the cache, as the runs find it
    best = 0.0
    for _ in range(2):
        start = time.perf_counter()
        rows = bare_fetch(connection_string, view)
        best = max(best, rows / (time.perf_counter() - start))
    return best


class Bench:
    def __init__(self, azurite: services.Azurite, postgres: services.Postgres,
                 simulator: Any, endpoint: CountingEndpoint, view: str) -> None:
        self.azurite, self.postgres = azurite, postgres
        self.simulator, self.endpoint, self.view = simulator, endpoint, view
        self.host_cpu = 0.0  # CPU seconds of the host during the last timed run
        self.simulator_cpu = 0.0  # CPU seconds of the simulator during the last timed run
        # CPU seconds of the services beside the host during the last timed run: the
        # machine's cores are shared, so their work bounds what a run can reach here.
        self.services_cpu: dict[str, float] = {}
        self.warm = False  # timed runs on a host that synced once already (timed_run)
        # Settings of every run's host (--partitions, --worker-processes).
        self.app_settings: dict[str, str] = {}

    def host_env(self, sink: str, page_size: int, extra: dict[str, str]) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:10]
        return {
            "AzureWebJobsStorage": self.azurite.connection_string,
            **self.simulator.app_settings(),
            "SYNC_WATERMARK_TABLE": f"W{suffix}",
            "SYNC_RUNS_TABLE": f"R{suffix}",
            "SYNC_DEAD_LETTER_TABLE": f"D{suffix}",
            "SYNC_ASSET_CHANGES_ENABLED": "true",
            "SYNC_ASSET_CHANGES_SCHEDULE": "0 0 0 1 1 *",  # runs are started by POST only
            "EVENTS_SAFETY_SCHEDULE": "0 0 0 1 1 *",
            "SYNC_ASSET_CHANGES_SOURCE_CONNECTION": self.postgres.odbc_connection_string,
            "SYNC_ASSET_CHANGES_SOURCE_VIEW": self.view,
            "SYNC_ASSET_CHANGES_LAG": "0",
            "SYNC_ASSET_CHANGES_PAGE_SIZE": str(page_size),
            "SYNC_ASSET_CHANGES_MAX_RUN_TIME": "3600",
            "SYNC_ASSET_CHANGES_MIN_INTERVAL": "0",
            "SYNC_ASSET_CHANGES_SINK": sink,
            "SYNC_ASSET_CHANGES_HTTP_URL": self.endpoint.url,
            "SYNC_ASSET_CHANGES_BACKLOG_THRESHOLD": "0",  # pages, unless a run asks for bulk
            **self.app_settings,
            **extra,
        }

    def timed_run(self, sink: str, page_size: int, extra: dict[str, str] | None = None,
                  app_dir: Path = REPO_ROOT) -> tuple[float, dict[str, Any]]:
        """Seconds from the POST to the run's end as the status shows it, and its last run
        (the app in `app_dir`: this tree, or the baseline compared with it).

        On a new host process, unless `self.warm`: then the host first syncs the same rows
        once, untimed, and the timed run sends them again from the initial watermark (its
        row deleted), as a host that is already running syncs: its imports done, its
        source connection, sessions and Salesforce token made (a scheduled sync's usual
        case; a new process pays these once)."""
        log = Path(tempfile.mkstemp(prefix="bench-host-", suffix=".log")[1])
        env = self.host_env(sink, page_size, extra or {})
        host = start_host(app_dir, env=env, log_path=log)
        try:
            if self.warm:
                self._run(host, env["SYNC_RUNS_TABLE"])
                TableServiceClient.from_connection_string(
                    self.azurite.connection_string).get_table_client(
                        env["SYNC_WATERMARK_TABLE"]).delete_entity(JOB, "watermark")
            self.endpoint.reset()
            self.simulator.reset()
            simulator_before = simulator_cpu(self.simulator)
            try:
                return self._run(host, env["SYNC_RUNS_TABLE"])
            finally:
                self.simulator_cpu = simulator_cpu(self.simulator) - simulator_before
        finally:
            host.stop()

    def _run(self, host: RunningHost, runs_table: str) -> tuple[float, dict[str, Any]]:
        # The run's end is read from its row in the runs table (EndedAt), not by polling
        # the host, whose status endpoint would compete with the run for the host's CPU.
        runs = TableServiceClient.from_connection_string(
            self.azurite.connection_string).get_table_client(runs_table)
        cpu_before = cpu_seconds(host.process.pid)
        services_before = self._services_cpu()
        started = datetime.now(UTC)
        answer = requests.post(host.url(f"/api/sync/{JOB}/run"),
                               params={"code": host.function_key}, timeout=60)
        if answer.status_code != 202:
            raise RuntimeError(f"run not started: {answer.status_code} {answer.text}")
        run_id = answer.json()["runId"]
        while True:
            time.sleep(0.2)
            rows = [dict(row) for row in runs.query_entities(
                "RunId eq @run", parameters={"run": run_id})]
            if rows and rows[0].get("Outcome") not in (None, "running"):
                if rows[0]["Outcome"] != "succeeded":
                    raise RuntimeError(f"run ended {rows[0]}\n{host.output()[-3000:]}")
                ended = datetime.fromisoformat(rows[0]["EndedAt"])
                self.host_cpu = cpu_seconds(host.process.pid) - cpu_before
                self.services_cpu = {name: value - services_before[name]
                                     for name, value in self._services_cpu().items()}
                self._wait_until_completed(host)  # untimed: the next run may start then
                return (ended - started).total_seconds(), rows[0]

    def _services_cpu(self) -> dict[str, float]:
        return {"PostgreSQL": cpu_seconds(self.postgres.process.pid),
                "Azurite": cpu_seconds(self.azurite.process.pid),
                # The counting endpoint's threads, and this loop's reads of the runs table.
                "endpoint": cpu_seconds(os.getpid(), children=False)}

    @staticmethod
    def _wait_until_completed(host: RunningHost) -> None:
        while True:
            body = requests.get(host.url(f"/api/sync/{JOB}"),
                                params={"code": host.function_key}, timeout=60).json()
            if body["lock"]["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
                return
            time.sleep(0.2)

    def delivered(self, sink: str) -> tuple[int, int]:
        """(rows received, distinct ids) at the target."""
        if sink == "http":
            return self.endpoint.counted()
        records = self.simulator.records("Asset")
        return len(records), len({record["External_Id__c"] for record in records})


def measure(bench: Bench, label: str, rows: int, sink: str, page_size: int,
            extra: dict[str, str] | None = None, repeat: int = 3) -> tuple[float, float]:
    """Median rows/s and median ratio to the floor of `repeat` runs, each paired with a
    floor measured just before it: on a shared machine the load drifts, and a ratio of
    two measurements taken side by side drifts less than either. Each run is checked for
    rows lost or duplicated at the target."""
    speeds, ratios, floors, details, cpus, target_cpus = [], [], [], [], [], []
    services: list[dict[str, float]] = []
    for _ in range(repeat):
        floor = fetch_floor(bench.postgres.odbc_connection_string, bench.view)
        elapsed, run = bench.timed_run(sink, page_size, extra)
        cpus.append(bench.host_cpu)
        target_cpus.append(bench.simulator_cpu)
        services.append(bench.services_cpu)
        received, distinct = bench.delivered(sink)
        if distinct != rows or received < rows:
            raise SystemExit(f"{label}: rows lost or duplicated ({received} / {distinct})")
        speeds.append(rows / elapsed)
        floors.append(floor)
        ratios.append(rows / elapsed / floor)
        details.append(f"{elapsed:.1f} s")
    speed, ratio = statistics.median(speeds), statistics.median(ratios)
    simulator = (f"  simulator CPU {statistics.median(target_cpus):.2f} s"
                 if sink == "salesforce" else "")
    simulator += "".join(
        f"  {name} CPU {statistics.median(run[name] for run in services):.2f} s"
        for name in services[0])
    print(f"  {label:<40} {speed:>8,.0f} rows/s  {ratio:5.3f} x floor  host CPU "
          f"{statistics.median(cpus):.2f} s{simulator}  (floors "
          f"{', '.join(f'{floor:,.0f}' for floor in floors)}; runs {', '.join(details)}; "
          f"ratios {', '.join(f'{value:.3f}' for value in ratios)}; last run Rows "
          f"{run.get('Rows')} Pages {run.get('Pages')} Mode {run.get('Mode', 'pages')}, "
          f"target {received:,} / {distinct:,} distinct; load average "
          f"{' '.join(f'{value:.1f}' for value in os.getloadavg())})")
    return speed, ratio


def compare_backlog(bench: Bench, rows: int, repeat: int) -> None:
    """The same backlog into the simulator through sObject Collections (5,000-row pages,
    the threshold off) and through the Bulk API 2.0 backlog mode (the default threshold,
    part size and poll interval), `repeat` pairs side by side, each pair beside a floor."""
    print(f"backlog of {rows:,} rows into the simulator, {repeat} pairs:")
    modes = {"sObject Collections, 5000-row pages": {},
             "Bulk API 2.0 backlog mode": {"SYNC_ASSET_CHANGES_BACKLOG_THRESHOLD": "10000"}}
    figures: dict[str, list[tuple[float, float, float, float]]] = {mode: [] for mode in modes}
    pair_ratios, floors = [], []
    for _ in range(repeat):
        floors.append(fetch_floor(bench.postgres.odbc_connection_string, bench.view))
        speeds = []
        for mode, extra in modes.items():
            elapsed, run = bench.timed_run("salesforce", 5000, extra)
            received, distinct = bench.delivered("salesforce")
            if distinct != rows or received < rows or run.get("Rows") != rows:
                raise SystemExit(f"{mode}: rows lost or duplicated ({received} / {distinct})")
            speeds.append(rows / elapsed)
            figures[mode].append((elapsed, rows / elapsed, bench.host_cpu,
                                  bench.simulator_cpu))
        pair_ratios.append(speeds[1] / speeds[0])
    floor = statistics.median(floors)
    for mode, runs in figures.items():
        speed = statistics.median(run[1] for run in runs)
        print(f"  {mode:<40} {speed:>8,.0f} rows/s  {speed / floor:5.3f} x floor  "
              f"host CPU {statistics.median(run[2] for run in runs):.2f} s  simulator CPU "
              f"{statistics.median(run[3] for run in runs):.2f} s  (runs "
              f"{', '.join(f'{run[0]:.1f} s' for run in runs)})")
    print(f"  bare fetch floor {floor:,.0f} rows/s (floors "
          f"{', '.join(f'{value:,.0f}' for value in floors)})")
    print(f"  Bulk API backlog / Collections: {statistics.median(pair_ratios):.2f} x (pairs "
          f"{', '.join(f'{value:.2f}' for value in pair_ratios)})")


def simulator_cpu(simulator: Any) -> float:
    """CPU seconds of the simulator's process (it runs in one: start_simulator)."""
    process = getattr(simulator, "_process", None)
    return cpu_seconds(process.pid) if process is not None else 0.0


def compare(bench: Bench, baseline: Path, rows: int, sink: str, page_size: int,
            repeat: int) -> None:
    """Runs of the app in `baseline` (e.g. an export of main) and of this tree, alternated
    on the same services: medians of wall time and of host CPU each, and their ratios."""
    walls: dict[str, list[float]] = {"baseline": [], "this tree": []}
    cpus: dict[str, list[float]] = {"baseline": [], "this tree": []}
    simulator_cpus: dict[str, list[float]] = {"baseline": [], "this tree": []}
    for _ in range(repeat):
        for name, app_dir in (("baseline", baseline), ("this tree", REPO_ROOT)):
            elapsed, _run = bench.timed_run(sink, page_size, app_dir=app_dir)
            received, distinct = bench.delivered(sink)
            if distinct != rows or received < rows:
                raise SystemExit(f"{name}: rows lost or duplicated ({received} / {distinct})")
            walls[name].append(elapsed)
            cpus[name].append(bench.host_cpu)
            simulator_cpus[name].append(bench.simulator_cpu)
    simulator = sink == "salesforce"
    for name in walls:
        print(f"  {name:<10} {sink}, {page_size}-row pages: wall "
              f"{statistics.median(walls[name]):.2f} s, host CPU "
              f"{statistics.median(cpus[name]):.2f} s"
              + (f", simulator CPU {statistics.median(simulator_cpus[name]):.2f} s"
                 if simulator else "")
              + f" (walls {', '.join(f'{value:.2f}' for value in walls[name])}; CPU "
              f"{', '.join(f'{value:.2f}' for value in cpus[name])}"
              + (f"; simulator CPU "
                 f"{', '.join(f'{value:.2f}' for value in simulator_cpus[name])}"
                 if simulator else "") + ")")

    def ratio(figures: dict[str, list[float]]) -> float:
        return statistics.median(figures["this tree"]) / statistics.median(figures["baseline"])

    print(f"  this tree / baseline: wall {ratio(walls):.2f} x, host CPU {ratio(cpus):.2f} x"
          + (f", simulator CPU {ratio(simulator_cpus):.2f} x" if simulator else "")
          + f"; load average {' '.join(f'{value:.1f}' for value in os.getloadavg())}")


def measure_scaled_out(bench: Bench, arguments: argparse.Namespace) -> None:
    """The runs of a job set up for throughput, as a scheduled sync finds its host: 2 key
    partitions in 2 worker processes, on a host that synced once already, at the default
    500-row pages (issue 14's targets are for this page size)."""
    print(f"scaled out: {SCALED_OUT['SYNC_ASSET_CHANGES_PARTITIONS']} key partitions, "
          f"{SCALED_OUT['FUNCTIONS_WORKER_PROCESS_COUNT']} worker processes, a host that "
          "synced once already per timed run")
    settings, bench.app_settings = bench.app_settings, {**bench.app_settings, **SCALED_OUT}
    bench.warm = True
    try:
        for sink in filter(None, arguments.sinks.split(",")):
            target = "counting HTTP endpoint" if sink == "http" else "sfsim Collections"
            measure(bench, f"{target}, 500-row pages", arguments.rows, sink, 500,
                    repeat=arguments.repeat)
    finally:
        bench.app_settings, bench.warm = settings, False


SCALED_OUT = {"SYNC_ASSET_CHANGES_PARTITIONS": "2", "FUNCTIONS_WORKER_PROCESS_COUNT": "2"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--page-sizes", default="500,5000")
    parser.add_argument("--sinks", default="http,salesforce")
    parser.add_argument("--backlog-rows", type=int, default=200_000,
                        help="rows of the Bulk API vs Collections comparison (0: skip it)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per configuration (medians are reported)")
    parser.add_argument("--warm", action="store_true",
                        help="time each run on a host that synced the same rows once "
                             "already (imports, connections, token made), not a new one")
    parser.add_argument("--partitions", type=int, default=1,
                        help="key partitions each run syncs side by side "
                             "(SYNC_ASSET_CHANGES_PARTITIONS)")
    parser.add_argument("--worker-processes", type=int, default=1,
                        help="FUNCTIONS_WORKER_PROCESS_COUNT of the host (activities in "
                             "that many worker processes, where the host supports it)")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="an app setting of every run's host (repeatable), e.g. "
                             "SYNC_PAGES_IN_FLIGHT=2")
    parser.add_argument("--baseline", type=Path,
                        help="an app tree (e.g. an export of main) whose runs are "
                             "alternated with this tree's, instead of the floor ratios")
    arguments = parser.parse_args()

    postgres = services.start_postgres()
    azurite = services.start_azurite()
    from sfsim.testing import start_simulator

    simulator = start_simulator(in_subprocess=True)
    endpoint = CountingEndpoint()
    try:
        source = postgres.odbc_connection_string
        view = "bench_asset_changes_v"
        load_assets(source, "bench_assets", arguments.rows, view)
        bench = Bench(azurite, postgres, simulator, endpoint, view)
        bench.app_settings = {
            "SYNC_ASSET_CHANGES_PARTITIONS": str(arguments.partitions),
            "FUNCTIONS_WORKER_PROCESS_COUNT": str(arguments.worker_processes),
            **dict(setting.split("=", 1) for setting in arguments.setting)}
        print(f"source: PostgreSQL via psqlODBC, view of {arguments.rows:,} rows; "
              "host: devhost + Azurite; runs started by POST /api/sync/asset-changes/run; "
              f"{'a host that synced once already' if arguments.warm else 'a new host'} "
              f"per timed run; {arguments.partitions} key partition(s), "
              f"{arguments.worker_processes} worker process(es) "
              "(host CPU: the host and its worker processes)"
              + "".join(f"; {setting}" for setting in arguments.setting))
        bench.timed_run("http", 500)  # a first run warms the files' and services' caches
        bench.warm = arguments.warm
        if arguments.baseline:
            bench.timed_run("http", 500, app_dir=arguments.baseline)
            print(f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
            for sink in filter(None, arguments.sinks.split(",")):
                for page_size in (int(text) for text in arguments.page_sizes.split(",")):
                    compare(bench, arguments.baseline.resolve(), arguments.rows, sink,
                            page_size, arguments.repeat)
            return
        for sink in filter(None, arguments.sinks.split(",")):
            for page_size in (int(text) for text in arguments.page_sizes.split(",")):
                target = "counting HTTP endpoint" if sink == "http" else "sfsim Collections"
                measure(bench, f"{target}, {page_size}-row pages", arguments.rows, sink,
                        page_size, repeat=arguments.repeat)
        if not (arguments.warm or arguments.setting or arguments.partitions > 1
                or arguments.worker_processes > 1):
            measure_scaled_out(bench, arguments)
        if arguments.backlog_rows:
            load_assets(source, "bench_assets", arguments.backlog_rows, view)
            compare_backlog(bench, arguments.backlog_rows, arguments.repeat)
    finally:
        endpoint.stop()
        simulator.stop()
        azurite.stop(grace_seconds=1)
        postgres.stop()


if __name__ == "__main__":
    main()
