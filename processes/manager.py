"""The job manager: pygeoapi's TinyDB manager with errors and binary results handled.

pygeoapi 0.21's ``BaseManager._execute_handler_sync`` catches every exception raised by a
processor's ``execute`` and answers HTTP 400 ``InvalidParameterValue`` whatever it was, so a
too-large request could not be a 413 nor a missing feature a 404.  This manager records the
error (mapped by :mod:`sentinelle.processes.errors`), marks the job failed with that code,
and, for synchronous executions, re-raises it so that ``api.processes.execute_process``
answers with the error's own status and message.  Asynchronous jobs keep pygeoapi's
behaviour (the job is ``failed``, its message says why).

It also makes ``"response": "document"`` work with binary outputs: pygeoapi wraps the output
in ``{"outputs": [...]}`` and then fails to serialise bytes, so bytes become a qualified
value ``{"id", "mediaType", "encoding": "base64", "value"}`` first.

Configured with ``server.manager.name: sentinelle.processes.manager.SentinelleManager``.
"""

from __future__ import annotations

import base64
import json
from multiprocessing import dummy
from typing import Any, Optional

from pygeoapi.process.base import BaseProcessor
from pygeoapi.process.manager.tinydb_ import TinyDBManager
from pygeoapi.util import JobStatus, RequestedResponse, Subscriber

from sentinelle.processes.errors import to_process_error

RAW = RequestedResponse.raw.value
DOCUMENT = RequestedResponse.document.value


def document_value(processor: BaseProcessor, mimetype: str, outputs: Any) -> tuple[str, Any]:
    """Bytes as an OGC qualified value for ``response: document`` (JSON media types embedded
    as JSON, others base64); anything else unchanged."""
    if not isinstance(outputs, bytes):
        return mimetype, outputs
    output_id = next(iter(processor.metadata.get("outputs", {})), "result")
    if "json" in mimetype.split(";")[0]:  # GeoJSON as bytes: embed it as JSON, not base64
        return "application/json", {"id": output_id, "mediaType": mimetype,
                                    "value": json.loads(outputs)}
    return "application/json", {
        "id": output_id, "mediaType": mimetype, "encoding": "base64",
        "value": base64.b64encode(outputs).decode("ascii"),
    }


class SentinelleManager(TinyDBManager):
    """TinyDB jobs; HTTP statuses of process errors preserved for synchronous execution."""

    def _run(self, p: BaseProcessor, job_id: str, data_dict: dict,
             requested_outputs: Optional[dict], subscriber: Optional[Subscriber],
             requested_response: Optional[str], *, raise_errors: bool):
        errors = []
        execute = p.execute

        def recording_execute(data, *args, **kwargs):
            try:
                mimetype, outputs = execute(data, *args, **kwargs)
            except Exception as err:
                errors.append(to_process_error(err))
                raise errors[-1] from err
            if requested_response == DOCUMENT:
                return document_value(p, mimetype, outputs)
            return mimetype, outputs

        p.execute = recording_execute  # the processor is built for this request only
        try:
            mimetype, outputs, status = super()._execute_handler_sync(
                p, job_id, data_dict, requested_outputs, subscriber, requested_response)
        finally:
            p.execute = execute
        if status == JobStatus.failed and errors:
            error = errors[-1]
            self.update_job(job_id, {"message": f"{error.ogc_exception_code}: {error.message}"})
            outputs = {"type": error.ogc_exception_code, "code": error.ogc_exception_code,
                       "description": error.message}
            if raise_errors:
                raise error
        return mimetype, outputs, status

    def _execute_handler_sync(self, p, job_id, data_dict, requested_outputs=None,
                              subscriber=None, requested_response=RAW):
        return self._run(p, job_id, data_dict, requested_outputs, subscriber,
                         requested_response, raise_errors=True)

    def _execute_handler_async(self, p, job_id, data_dict, requested_outputs=None,
                               subscriber=None, requested_response=RAW):
        args = (p, job_id, data_dict, requested_outputs, subscriber, requested_response)
        thread = dummy.Process(target=self._run, args=args, kwargs={"raise_errors": False})
        thread.start()
        return "application/json", None, JobStatus.accepted

    def __repr__(self):
        return f"<SentinelleManager> {self.connection}"
