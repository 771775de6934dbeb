"""OpenTelemetry SDK set up at import, as its docs show: a TracerProvider with a BatchSpanProcessor
(its export thread starts at import; the SDK restarts it after a fork with os.register_at_fork) and
opentelemetry-instrumentation-fastapi for the server spans.

The exporter writes each span as one JSON line to OTEL_SPAN_DIR/spans-<pid>.jsonl, the pid of the
process that exported it: a worker whose export thread is dead exports nothing.
GET /   which process answered (a server span per request)
"""

import json
import os
from typing import Sequence

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

SPAN_DIR = os.environ["OTEL_SPAN_DIR"]


class FilePerProcessExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(os.path.join(SPAN_DIR, f"spans-{os.getpid()}.jsonl"), "a") as out:
            for span in spans:
                out.write(json.dumps(json.loads(span.to_json())) + "\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(FilePerProcessExporter(), schedule_delay_millis=200))
trace.set_tracer_provider(provider)

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid()}


FastAPIInstrumentor.instrument_app(app)
