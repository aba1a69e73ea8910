"""The console's own rules: lockout, session timeouts, the password policy, audit targets."""

from datetime import UTC, datetime, timedelta

import pytest

from services.console.domain import (
    Lockout,
    PasswordError,
    Person,
    Session,
    SessionPolicy,
    action_of,
    check_password,
    target_of,
)
from shared.auth import Role

NOW = datetime(2026, 12, 31, 15, 59, tzinfo=UTC)


def person() -> Person:
    return Person(
        login="clerk", name="李文静", unit="cppcc-office", roles=[Role.OFFICE], password_hash="x"
    )


def test_the_fifth_wrong_password_in_a_row_locks_for_the_period() -> None:
    lockout, clerk = Lockout(), person()
    for _ in range(4):
        lockout.failed(clerk, NOW)
    assert not lockout.is_locked(clerk, NOW)
    lockout.failed(clerk, NOW)
    assert lockout.is_locked(clerk, NOW)
    assert lockout.is_locked(clerk, NOW + timedelta(minutes=14, seconds=59))
    assert not lockout.is_locked(clerk, NOW + timedelta(minutes=15))


def test_a_right_password_resets_the_count() -> None:
    lockout, clerk = Lockout(), person()
    for _ in range(4):
        lockout.failed(clerk, NOW)
    lockout.succeeded(clerk)
    lockout.failed(clerk, NOW)
    assert clerk.failed_logins == 1 and not lockout.is_locked(clerk, NOW)


def test_sessions_end_when_idle_and_after_the_absolute_limit() -> None:
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
    session = Session(
        person="clerk", name="李文静", unit="cppcc-office", unit_name="区政协办公室",
        role=Role.OFFICE, csrf="t", created_at=NOW, last_seen=NOW,
    )  # fmt: skip
    assert not session.is_expired(policy, NOW + timedelta(minutes=29))
    assert session.is_expired(policy, NOW + timedelta(minutes=30))
    # Busy all day: still ends 12 hours after login.
    busy = session.model_copy(update={"last_seen": NOW + timedelta(hours=11, minutes=50)})
    assert not busy.is_expired(policy, NOW + timedelta(hours=11, minutes=59))
    assert busy.is_expired(policy, NOW + timedelta(hours=12))


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1", "至少 10 位"),
        ("onlyletterspassword", "字母和数字"),
        ("1234567890123", "字母和数字"),
        ("clerk2026password", "登录名"),
        ("x1" * 70, "最多 128 位"),
    ],
)
def test_passwords_the_policy_refuses(password: str, reason: str) -> None:
    with pytest.raises(PasswordError, match=reason):
        check_password(password, "clerk")


def test_a_good_password_passes() -> None:
    check_password("Minyi-2026-secure", "clerk")


def test_audit_target_is_the_case_or_opinion_in_the_path() -> None:
    assert target_of("cases/01JX/sign") == "01JX"
    assert target_of("opinions/01JY") == "01JY"
    assert target_of("triage/01JZ") == "01JZ"
    assert target_of("reports/01R/sign-off") == "01R"
    assert target_of("kpis/export") is None
    assert target_of("themes/01T/tasks/1/done") == "01T"


@pytest.mark.parametrize(
    ("service", "method", "path", "action"),
    [
        ("followup", "POST", "cases/01JX/sign", "签收"),
        ("followup", "POST", "cases/01JX/extension", "申请延期"),
        ("followup", "POST", "cases/01JX/extension/decision", "延期审批"),
        ("intake", "POST", "opinions", "意见登记"),
        ("intake", "POST", "opinions/similar", "相近意见查询"),
        ("intake", "GET", "opinions/export", "导出"),
        ("intake", "POST", "opinions/01JY/contact", "查看联系方式"),
        ("intake", "POST", "opinions/01JY/filing", "立案决定"),
        ("routing", "POST", "triage/01JZ", "分类交办"),
        ("followup", "GET", "inbox", "GET /followup/inbox"),
        ("followup", "POST", "cases/01JX/review", "答复审核"),
        ("followup", "PUT", "review/rules", "审核规则"),
        ("followup", "POST", "cases/01JX/adoptions", "采用"),
        ("followup", "POST", "reports", "编辑专报"),
        ("followup", "PUT", "reports/01R/draft", "修改专报"),
        ("followup", "POST", "reports/01R/sign-off", "专报签发"),
        ("followup", "POST", "reports/01R/submission", "专报报送"),
        ("followup", "POST", "reports/01R/adoptions", "专报采用"),
        ("followup", "POST", "reports/01R/instructions", "专报批示"),
        ("followup", "GET", "reports/01R/export", "导出专报"),
        ("followup", "POST", "themes", "每月一题选题"),
        ("followup", "POST", "themes/01T/tasks/1/done", "每月一题任务完成"),
        ("followup", "POST", "themes/01T/opinions", "每月一题关联意见"),
        ("followup", "POST", "cases/01JX/kind", "更正诉求类型"),
    ],
)
def test_audit_names_what_a_request_does_in_chinese(
    service: str, method: str, path: str, action: str
) -> None:
    assert action_of(service, method, path) == action
