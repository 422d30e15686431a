"""Requests for the Human_Resources operations the adapter uses, and compact results.

Pure functions: they build the keyword arguments zeep takes for an operation and
turn zeep's response objects into small JSON-able dicts. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

__all__ = [
    "VERSION",
    "change_work_email_request",
    "compact_worker",
    "event_reference",
    "get_workers_request",
    "workers_page",
]

VERSION = "v30.0"


def _ref(value: str, id_type: str) -> dict[str, Any]:
    return {"ID": [{"_value_1": value, "type": id_type}]}


def get_workers_request(
    *,
    ids: Sequence[str],
    id_type: str,
    updated_from: datetime | None,
    updated_through: datetime | None,
    page: int,
    count: int,
    as_of_entry: datetime | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``Get_Workers`` by references or by updated-in-range."""
    response_filter: dict[str, Any] = {"Page": page, "Count": count}
    if as_of_entry is not None:
        response_filter["As_Of_Entry_DateTime"] = as_of_entry
    kwargs: dict[str, Any] = {
        "Response_Filter": response_filter,
        "Response_Group": {
            "Include_Reference": True,
            "Include_Personal_Information": True,
            "Include_Employment_Information": True,
        },
        "version": VERSION,
    }
    if ids:
        # Unknown IDs come back missing instead of failing the whole lookup.
        kwargs["Request_References"] = {
            "Worker_Reference": [_ref(i, id_type) for i in ids],
            "Skip_Non_Existing_Instances": True,
        }
    else:
        kwargs["Request_Criteria"] = {
            "Transaction_Log_Criteria_Data": [
                {
                    "Transaction_Date_Range_Data": {
                        "Updated_From": updated_from,
                        "Updated_Through": updated_through,
                    }
                }
            ]
        }
    return kwargs


def change_work_email_request(
    *, person_id: str, id_type: str, email: str, effective_date: date | None
) -> dict[str, Any]:
    """Keyword arguments of ``Change_Work_Contact_Information`` setting the work e-mail."""
    data: dict[str, Any] = {
        "Person_Reference": _ref(person_id, id_type),
        "Person_Contact_Information_Data": {
            "Person_Email_Information_Data": {
                "Email_Information_Data": [
                    {
                        "Email_Data": [{"Email_Address": email}],
                        "Usage_Data": [
                            {
                                "Type_Data": [
                                    {
                                        "Type_Reference": _ref(
                                            "WORK", "Communication_Usage_Type_ID"
                                        ),
                                        "Primary": True,
                                    }
                                ],
                                "Public": True,
                            }
                        ],
                    }
                ],
                # The synced address becomes the worker's only work e-mail, rather than
                # one more beside the old ones.
                "Replace_All": True,
            }
        },
    }
    if effective_date is not None:
        data["Event_Effective_Date"] = effective_date
    return {
        "Business_Process_Parameters": {"Auto_Complete": True, "Run_Now": True},
        "Change_Work_Contact_Information_Data": data,
        "version": VERSION,
    }


def _ids(reference: Any) -> dict[str, str]:
    """``{type: value}`` of a Workday reference (``<ID type="WID">...</ID>`` list)."""
    if reference is None:
        return {}
    return {str(i.type): str(i._value_1) for i in (reference.ID or [])}


def event_reference(response: Any, field: str) -> str | None:
    """The WID (or first ID) of the event reference ``field`` of a write's response."""
    ids = _ids(getattr(response, field, None))
    return ids.get("WID") or next(iter(ids.values()), None)


def _first(items: Iterable[Any] | None, *, primary: str | None = None) -> Any:
    listed = list(items or [])
    if primary is not None:
        for item in listed:
            if getattr(item, primary, None):
                return item
    return listed[0] if listed else None


def _work_email(contact: Any) -> str | None:
    emails = list(getattr(contact, "Email_Address_Data", None) or [])
    found: str | None = None
    for email in emails:
        for usage in email.Usage_Data or []:
            for kind in usage.Type_Data or []:
                if _ids(kind.Type_Reference).get("Communication_Usage_Type_ID") == "WORK":
                    if kind.Primary:
                        return str(email.Email_Address)
                    found = found or str(email.Email_Address)
    return found


def compact_worker(worker: Any) -> dict[str, Any]:
    """One ``wd:Worker`` as a small dict: ids, names, work e-mail, position, status."""
    data = worker.Worker_Data
    refs = _ids(worker.Worker_Reference)
    personal = getattr(data, "Personal_Data", None)
    names = getattr(personal, "Name_Data", None)
    legal = getattr(getattr(names, "Legal_Name_Data", None), "Name_Detail_Data", None)
    preferred = getattr(getattr(names, "Preferred_Name_Data", None), "Name_Detail_Data", None)
    employment = getattr(data, "Employment_Data", None)
    job = _first(getattr(employment, "Worker_Job_Data", None), primary="Primary_Job")
    position = getattr(job, "Position_Data", None)
    status = getattr(employment, "Worker_Status_Data", None)
    hire_date = getattr(status, "Hire_Date", None)
    return {
        "worker_id": getattr(data, "Worker_ID", None),
        "wid": refs.get("WID"),
        "worker_type": "contingent" if "Contingent_Worker_ID" in refs else "employee",
        "user_id": getattr(data, "User_ID", None),
        "name": worker.Worker_Descriptor,
        "first_name": getattr(legal, "First_Name", None),
        "last_name": getattr(legal, "Last_Name", None),
        "preferred_first_name": getattr(preferred, "First_Name", None),
        "work_email": _work_email(getattr(personal, "Contact_Data", None)),
        "position_id": getattr(position, "Position_ID", None),
        "position_title": getattr(position, "Position_Title", None),
        "business_title": getattr(position, "Business_Title", None),
        "active": getattr(status, "Active", None),
        "hire_date": hire_date.isoformat() if hire_date is not None else None,
    }


def workers_page(response: Any, *, requested: Sequence[str]) -> dict[str, Any]:
    """The compact result of ``Get_Workers``: workers, the IDs not found, paging."""
    results = response.Response_Results
    found = list(getattr(response.Response_Data, "Worker", None) or [])
    workers = [compact_worker(w) for w in found]
    known = {str(i) for w in found for i in _ids(w.Worker_Reference).values()}
    known.update(str(w["worker_id"]) for w in workers)
    return {
        "workers": workers,
        "missing": [i for i in requested if i not in known],
        "page": int(results.Page or 1) if results is not None else 1,
        "total_pages": int(results.Total_Pages or 0) if results is not None else 0,
        "total_results": int(results.Total_Results or 0) if results is not None else 0,
    }
