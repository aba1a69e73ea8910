"""A lead department uploads files and replies with them (答复附件); the office and supervisors
download them, nobody else does; bad files are refused. Supervisors see extension requests
waiting for them (延期审批) until they decide."""

from datetime import timedelta
from typing import Any

import httpx

from shared.clock import BEIJING, utcnow

from .conftest import Keys, System
from .flow import case_of, lead_of, signed_by_lead, submit

PHOTO = b"\x89PNG\r\n\x1a\n" + b"repaired-shelter" * 50
REPORT = b"%PDF-1.4\n" + b"site-report" * 40


async def test_reply_carries_uploaded_files_only_its_readers_download(
    system: System, keys: Keys
) -> None:
    followup = system.url("followup")
    async with httpx.AsyncClient(timeout=30) as http:
        opinion_id = await submit(http, system, keys.office)
        code = lead_of(await case_of(http, system, keys.office, opinion_id))
        assert code is not None
        lead = Keys.header(keys.departments[code])
        stranger = Keys.header(keys.departments["education" if code != "education" else "housing"])

        async def upload(headers: dict[str, str], name: str, data: bytes) -> httpx.Response:
            return await http.post(
                f"{followup}/files/{opinion_id}",
                headers=headers,
                params={"filename": name},
                content=data,
            )

        unsigned = await upload(lead, "现场.png", PHOTO)
        assert unsigned.status_code == 409, unsigned.text  # sign first
        assert (
            await http.post(f"{followup}/cases/{opinion_id}/sign", headers=lead)
        ).status_code == 200
        refused = {
            "someone else's case": await upload(stranger, "现场.png", PHOTO),
            "empty": await upload(lead, "空.png", b""),
            "a program": await upload(lead, "run.exe", b"MZ\x90\x00" + b"x" * 100),
            "too large": await upload(lead, "大.pdf", b"%PDF-" + b"x" * 10_000_001),
        }
        assert {k: r.status_code for k, r in refused.items()} == {
            "someone else's case": 403,
            "empty": 422,
            "a program": 415,
            "too large": 413,
        }
        assert all(
            r.headers["content-type"] == "application/problem+json" for r in refused.values()
        )
        files = {}
        for name, data in (("现场.png", PHOTO), ("整改报告.pdf", REPORT)):
            r = await upload(lead, name, data)
            assert r.status_code == 201, r.text
            assert r.json()["size"] == len(data)
            files[r.json()["id"]] = (name, data)

        reply_url = f"{followup}/cases/{opinion_id}/reply"
        made_up = {
            "result": "已解决",
            "text": "已修复。",
            "attachments": [{"name": "x", "file_id": "nope"}],
        }
        assert (await http.post(reply_url, headers=lead, json=made_up)).status_code == 422
        both = {"name": "x", "file_id": next(iter(files)), "url": "https://example.org/a"}
        bad = await http.post(reply_url, headers=lead, json={**made_up, "attachments": [both]})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"].startswith("attachments")
        attachments = [{"name": name, "file_id": fid} for fid, (name, _) in files.items()]
        replied = await http.post(
            reply_url,
            headers=lead,
            json={
                "result": "已解决",
                "text": "站台顶棚已修复，附现场照片和整改报告。",
                "attachments": attachments,
            },
        )
        assert replied.status_code == 200, replied.text
        shown = replied.json()["assignments"][code]["attachments"]
        assert [a["file_id"] for a in shown] == list(files)

        readers = [Keys.header(keys.office), lead, Keys.header(keys.supervisor)]
        for headers in readers:
            for fid, (_, data) in files.items():
                r = await http.get(f"{followup}/files/{opinion_id}/{fid}", headers=headers)
                assert r.status_code == 200 and r.content == data
        fid = next(iter(files))
        for headers in (stranger, Keys.header(keys.other_office)):
            r = await http.get(f"{followup}/files/{opinion_id}/{fid}", headers=headers)
            assert r.status_code == 404
        assert (await http.get(f"{followup}/files/{opinion_id}/{fid}")).status_code == 401


async def test_extension_requests_wait_in_the_supervisors_queue_until_decided(
    system: System, keys: Keys
) -> None:
    followup = system.url("followup")
    supervisor = Keys.header(keys.supervisor)
    async with httpx.AsyncClient(timeout=30) as http:
        opinion_id = await submit(http, system, keys.office)
        code, lead = await signed_by_lead(http, system, keys, opinion_id)
        case_url = f"{followup}/cases/{opinion_id}"

        async def waiting() -> list[str]:
            ids: list[str] = []
            after: str | None = None
            while True:  # every page: other tests' requests may be waiting too
                params: dict[str, Any] = {"limit": 50} | ({"after": after} if after else {})
                r = await http.get(
                    f"{followup}/supervision/extensions", headers=supervisor, params=params
                )
                assert r.status_code == 200, r.text
                page = [item["id"] for item in r.json()]
                ids += page
                if len(page) < 50:
                    return ids
                after = page[-1]

        assert opinion_id not in await waiting()
        new_due = (utcnow().astimezone(BEIJING) + timedelta(days=40)).date()
        asked = {"reason": "需协调市级部门审批", "new_due": new_due.isoformat()}
        assert (
            await http.post(f"{case_url}/extension", headers=lead, json=asked)
        ).status_code == 200
        assert opinion_id in await waiting()
        forbidden = await http.get(f"{followup}/supervision/extensions", headers=lead)
        assert forbidden.status_code == 403
        decision = {"department": code, "approve": False, "reason": "请按期办结"}
        decided = await http.post(
            f"{case_url}/extension/decision", headers=supervisor, json=decision
        )
        assert decided.status_code == 200, decided.text
        assert opinion_id not in await waiting()
