"""The batch capability with the benchmark's jobs: one 3-step job with an aggregator per
block size (10, 100, 1000) and scheduling strategy."""

import azure.durable_functions as df
import azure.functions as func

from activities import batch as batch_activities
from benchmarks.batch_steps import bench_jobs
from orchestrators import batch
from shared.batch import register_batch_jobs
from shared.config import app_settings

settings = app_settings()
register_batch_jobs(*bench_jobs(settings))

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(batch.blueprint)
app.register_functions(batch_activities.blueprint)
