"""`NetSuiteAdapter`: upserts by external id over SuiteTalk SOAP, with zeep, off the loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import requests
import structlog
from pydantic import SecretStr, ValidationError
from zeep import Client
from zeep import Settings as ZeepSettings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError
from zeep.transports import Transport
from zeep.wsdl import Document

from platypus.adapter import Action, Adapter, Request
from platypus.exceptions import PermanentError, RetryableError
from platypus.vendorhttp import mask_secrets_in

from .errors import (
    SESSION_FAULT,
    CredentialsError,
    classify_fault,
    classify_status,
    fault_type,
)
from .passport import ALGORITHM, new_passport
from .records import RECORDS, RecordSpec, UpsertResult, UpsertVendorBillResult
from .search import SearchParams, SearchTransactionsInput, search_page, search_record
from .settings import NetSuiteSettings

__all__ = ["BINDING", "NetSuiteAdapter"]

BINDING = "{urn:platform_2023_2.webservices.netsuite.com}NetSuiteBinding"
_MESSAGES_NS = "urn:messages_2023_2.platform.webservices.netsuite.com"
_FAULTS_NS = "urn:faults_2023_2.platform.webservices.netsuite.com"
_SOAP_ENV = b"http://schemas.xmlsoap.org/soap/envelope/"
_RETRYABLE_HTTP = frozenset({408, 425, 429})
_WSDL_LOAD_TIMEOUT = 60

_log = structlog.get_logger("platypus.adapters.netsuite")

# Parsing the 2023.2 WSDL and its 48 schemas takes about half a second; every
# connection (and every test) using the same file shares one parsed document.
_documents: dict[str, Document] = {}
_documents_lock = threading.Lock()


def _wsdl_location(wsdl: str) -> str:
    if "://" in wsdl:
        return wsdl
    return str(Path(wsdl).expanduser().resolve())


def _document(location: str, session: requests.Session) -> Document:
    with _documents_lock:
        document = _documents.get(location)
        if document is None:
            # Fetched through the connection's session: its CA bundle and proxy.
            # zeep's annotations are partial: untyped constructors, and Document's
            # transport typed as a class where it takes an instance.
            transport = Transport(session=session, timeout=_WSDL_LOAD_TIMEOUT)  # type: ignore[no-untyped-call]
            document = Document(location, transport, settings=ZeepSettings())  # type: ignore[arg-type]
            _documents[location] = document
        return document


class _Transport(Transport):
    """zeep's transport, but an HTTP error without a SOAP fault stays an HTTP error.

    zeep parses any XML-ish error page (a proxy's 503 in XHTML, say) as a fault
    "Unknown fault occured"; classifying it needs the status code instead.
    """

    def post(self, address: str, message: Any, headers: Any) -> requests.Response:
        response: requests.Response = super().post(address, message, headers)  # type: ignore[no-untyped-call]
        status = response.status_code
        if status != 200 and not _is_soap_fault(response.content):
            raise TransportError(  # type: ignore[no-untyped-call]
                f"HTTP {status} without a SOAP answer", status_code=status
            )
        return response


def _is_soap_fault(content: bytes) -> bool:
    head = content[:2048]
    return _SOAP_ENV in head and b"Fault" in head


class NetSuiteAdapter(Adapter):
    """Upserts customers, sales orders and invoices by ``externalId``.

    Each call is a SuiteTalk ``upsert`` signed with a fresh token-based passport,
    run in a bounded thread pool since zeep blocks. The result names the record
    for later steps: ``{"internalId", "externalId", "type"}``.
    """

    name = "netsuite"
    Settings = NetSuiteSettings
    actions: ClassVar = {
        "upsert_customer": Action(
            input=RECORDS["upsert_customer"].input,
            result=UpsertResult,
            description="Create or update a customer by externalId.",
            idempotent=True,
        ),
        "upsert_sales_order": Action(
            input=RECORDS["upsert_sales_order"].input,
            result=UpsertResult,
            description="Create or update a sales order by externalId.",
            idempotent=True,
        ),
        "upsert_invoice": Action(
            input=RECORDS["upsert_invoice"].input,
            result=UpsertResult,
            description="Create or update an invoice by externalId.",
            idempotent=True,
        ),
        "upsert_vendor_bill": Action(
            input=RECORDS["upsert_vendor_bill"].input,
            result=UpsertVendorBillResult,
            description="Create or update a vendor bill (accounts payable) by externalId.",
            idempotent=True,
        ),
        "search_transactions": Action(
            params=SearchParams,
            input=SearchTransactionsInput,
            description=(
                "Transactions of a type whose lastModifiedDate is within a range, one page "
                "at a time; returns {records, page_index, total_pages, search_id}."
            ),
            writes=False,
            idempotent=True,
        ),
    }

    def __init__(self, settings: Any, *, connection: str = "") -> None:
        if not isinstance(settings, NetSuiteSettings):
            raise TypeError(
                f"NetSuiteAdapter needs NetSuiteSettings, got {type(settings).__name__}"
            )
        super().__init__(settings, connection=connection)
        self._config = settings
        self._consumer_secret = SecretStr("")
        self._token_secret = SecretStr("")
        self._client: Client | None = None
        self._service: Any = None
        self._session: requests.Session | None = None
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Read the secrets, load the WSDL (once per process) and open the thread pool."""
        if self._client is not None:
            return
        config = self._config
        self._consumer_secret = config.consumer_secret.resolve()
        self._token_secret = config.token_secret.resolve()
        session = requests.Session()
        pool_size = config.max_workers
        session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=pool_size))
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=pool_size))
        if config.ca_bundle is not None:
            session.verify = str(config.ca_bundle)
            # Otherwise REQUESTS_CA_BUNDLE and friends override `verify`.
            session.trust_env = False
        if config.proxy is not None:
            session.proxies = {"https": config.proxy, "http": config.proxy}
        document = await asyncio.to_thread(_document, _wsdl_location(config.wsdl), session)
        # zeep's constructors are unannotated, hence the ignores.
        transport = _Transport(session=session, operation_timeout=config.timeout)  # type: ignore[no-untyped-call]
        client = Client(document, transport=transport)  # type: ignore[no-untyped-call]
        self._service = client.create_service(BINDING, config.service_url)  # type: ignore[no-untyped-call]
        self._session = session
        self._client = client
        self._pool = ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix=f"netsuite-{self.connection}"
        )

    async def close(self) -> None:
        """Stop the thread pool (calls in flight end by their timeout) and the HTTP session."""
        pool, self._pool = self._pool, None
        session, self._session = self._session, None
        self._client = None
        self._service = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if session is not None:
            session.close()

    async def call(self, request: Request) -> Any:
        """Upsert the record in ``request.payload``; return its ``internalId``, ``externalId``
        and ``type``."""
        self.check_request(request)
        pool, client, service = self._pool, self._client, self._service
        if pool is None or client is None:
            raise RuntimeError(f"connection {self.connection!r} is not started; call start()")
        if request.action == "search_transactions":
            return await self._search(request, pool, client.get_type, service)
        spec = RECORDS[request.action]
        try:
            data = spec.input.model_validate(request.payload)
        except ValidationError as exc:
            # Locations and messages only: the values may be personal data.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(payload)'}: {err['msg']}"
                for err in exc.errors(include_input=False, include_url=False)
            )
            raise PermanentError(
                f"connection {self.connection!r}: invalid {spec.record_type} for "
                f"{request.action!r}: {problems}; fix the step's mapping"
            ) from None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                pool, self._upsert, client.get_type, service, spec, data
            )
        except CredentialsError as exc:
            _log.error(
                "netsuite_credentials_refused",
                connection=self.connection,
                account=self._config.account,
                vendor_code=exc.vendor_code,
                error=exc.message,
            )
            raise

    async def _search(
        self, request: Request, pool: ThreadPoolExecutor, get_type: Any, service: Any
    ) -> dict[str, Any]:
        try:
            params = SearchParams.model_validate(dict(request.params))
            data = SearchTransactionsInput.model_validate(request.payload)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(payload)'}: {err['msg']}"
                for err in exc.errors(include_input=False, include_url=False)
            )
            raise PermanentError(
                f"connection {self.connection!r}: invalid search_transactions request: {problems}"
            ) from None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, self._search_page, get_type, service, data, params)

    # -- in a worker thread -------------------------------------------------

    def _search_page(
        self, get_type: Any, service: Any, data: SearchTransactionsInput, params: SearchParams
    ) -> dict[str, Any]:
        """One page of a search; an InvalidSessionFault is answered by re-signing once."""
        where = (
            f"connection {self.connection!r}: search {data.record_type} modified "
            f"{data.modified_from.isoformat()}..{data.modified_through.isoformat()} "
            f"page {data.page_index}"
        )
        preferences = {
            "searchPreferences": {
                "bodyFieldsOnly": False,
                "returnSearchColumns": False,
                "pageSize": params.page_size,
            }
        }

        def send(header: dict[str, Any]) -> Any:
            headers = {**header, **preferences}
            if data.page_index == 1:
                return service.search(
                    searchRecord=search_record(get_type, data), _soapheaders=headers
                )
            return service.searchMoreWithId(
                searchId=data.search_id, pageIndex=data.page_index, _soapheaders=headers
            )

        for attempt in (1, 2):
            try:
                answer = self._call(send, where)
            except Fault as exc:
                element, code, message = _fault_detail(exc)
                error = classify_fault(element, code, self._scrub(message), where=where)
                if attempt == 1 and fault_type(element) == SESSION_FAULT:
                    continue
                raise error from None
            result = answer["body"]["searchResult"]
            status = result["status"]
            if not status["isSuccess"]:
                details = [
                    (str(d["code"] or ""), self._scrub(str(d["message"] or "")))
                    for d in (status["statusDetail"] or [])
                ]
                raise classify_status(details, where=where)
            return search_page(result)
        raise AssertionError("unreachable")  # pragma: no cover

    def _upsert(self, get_type: Any, service: Any, spec: RecordSpec, data: Any) -> dict[str, Any]:
        """One upsert; an InvalidSessionFault is answered by re-signing once."""
        record = spec.build(get_type, data, self._config.timezone)
        where = (
            f"connection {self.connection!r}: upsert {spec.record_type} "
            f"externalId={data.external_id!r}"
        )
        for attempt in (1, 2):
            try:
                answer = self._send(service, record, where)
            except Fault as exc:
                element, code, message = _fault_detail(exc)
                error = classify_fault(element, code, self._scrub(message), where=where)
                if attempt == 1 and fault_type(element) == SESSION_FAULT:
                    _log.info(
                        "netsuite_session_refused_resigning",
                        connection=self.connection,
                        vendor_code=error.vendor_code,
                    )
                    continue
                raise error from None
            return self._outcome(spec, answer, where)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, service: Any, record: Any, where: str) -> Any:
        return self._call(lambda header: service.upsert(record=record, _soapheaders=header), where)

    def _call(self, send: Any, where: str) -> Any:
        """``send(soap headers)`` with a fresh passport; transport failures classified."""
        config = self._config
        passport = new_passport(
            account=config.account,
            consumer_key=config.consumer_key,
            token_id=config.token_id,
            consumer_secret=self._consumer_secret,
            token_secret=self._token_secret,
        )
        header = {
            "tokenPassport": {
                "account": passport.account,
                "consumerKey": passport.consumer_key,
                "token": passport.token_id,
                "nonce": passport.nonce,
                "timestamp": passport.timestamp,
                "signature": {"_value_1": passport.signature, "algorithm": ALGORITHM},
            }
        }
        try:
            return send(header)
        except Fault:
            raise
        except TransportError as exc:
            status = exc.status_code
            retryable = status in _RETRYABLE_HTTP or 500 <= status < 600
            error = RetryableError if retryable else PermanentError
            hint = "retryable" if retryable else "check the connection's endpoint"
            raise error(
                f"{where}: HTTP {status} without a SOAP answer; {hint}", status_code=status
            ) from None
        except requests.Timeout:
            raise RetryableError(
                f"{where}: no answer within {config.timeout:g}s; retryable (an upsert by "
                "externalId makes a repeated write safe). Raise the connection's timeout "
                "if NetSuite is just slow"
            ) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            raise PermanentError(
                f"{where}: cannot send to {config.service_url}: {type(exc).__name__}; "
                "check the connection's endpoint"
            ) from None
        except requests.RequestException as exc:
            raise RetryableError(
                f"{where}: {type(exc).__name__}: {self._scrub(str(exc)) or 'no detail'}; "
                "retryable. Check that NetSuite is reachable at the endpoint"
            ) from None
        except ZeepError as exc:
            raise PermanentError(
                f"{where}: {type(exc).__name__}: {self._scrub(str(exc))[:300]}; the request "
                "or NetSuite's answer does not fit the WSDL"
            ) from None

    def _outcome(self, spec: RecordSpec, answer: Any, where: str) -> dict[str, Any]:
        # zeep answers {"header": {"documentInfo": ...}, "body": {"writeResponse": ...}}.
        write = answer["body"]["writeResponse"]
        status = write["status"]
        if not status["isSuccess"]:
            details = [
                (str(d["code"] or ""), self._scrub(str(d["message"] or "")))
                for d in (status["statusDetail"] or [])
            ]
            raise classify_status(details, where=where)
        ref = write["baseRef"]
        if ref is None:
            raise PermanentError(f"{where}: NetSuite reported success but named no record")
        return {
            "internalId": ref["internalId"],
            "externalId": ref["externalId"],
            "type": ref["type"] or spec.record_type,
        }

    def _scrub(self, text: str) -> str:
        # NetSuite never echoes a secret, but a proxy or a library might: never pass it on.
        return mask_secrets_in(text, [self._consumer_secret, self._token_secret])

    def __repr__(self) -> str:
        return (
            f"NetSuiteAdapter(connection={self.connection!r}, account={self._config.account!r}, "
            f"endpoint={self._config.service_url!r})"
        )


def _fault_detail(fault: Fault) -> tuple[str, str | None, str]:
    """(detail element's local name, its code, its message) of a NetSuite fault.

    The element is ``""`` when the fault has no NetSuite detail (the service
    could not parse the request, say); the message is then the faultstring.
    """
    detail = fault.detail
    if detail is not None and not isinstance(detail, bytes | str):
        for child in detail:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag.startswith(f"{{{_FAULTS_NS}}}"):
                code = child.findtext(f"{{{_FAULTS_NS}}}code")
                message = child.findtext(f"{{{_FAULTS_NS}}}message") or fault.message or ""
                return tag.split("}", 1)[1], code, message
    return "", None, str(fault.message or "")
