import pytest

from udfs.retention import SnapshotInfo, files_to_delete, orphans, parse_duration, plan

NOW = 1_000_000_000
H = 3_600_000


def chain(*jobs, start_ms=NOW - 10 * H, step_ms=60_000):
    """Snapshots 1..n, each the parent of the next; jobs[i] is snapshot i+1's flink.job-id."""
    return [SnapshotInfo(i + 1, i or None, start_ms + i * step_ms, job) for i, job in enumerate(jobs)]


def test_keeps_the_chain_down_to_the_last_flink_commit_under_later_non_flink_commits():
    # Flink commits 1..4, then three compactions/Python commits (5..7), all older than the cutoff.
    snaps = chain("A", "A", "A", "A", None, None, None)
    p = plan(snaps, current=7, now_ms=NOW, older_than_ms=H, retain_last=1)
    assert set(p.keep) == {7, 6, 5, 4}
    assert p.expire == [1, 2, 3]
    assert p.flink_resume_snapshot == {"A": 4}


def test_without_the_flink_rule_the_resume_snapshot_is_expired():
    snaps = chain("A", "A", "A", "A", None, None, None)
    p = plan(snaps, current=7, now_ms=NOW, older_than_ms=H, retain_last=1, protect_flink=False)
    assert 4 in p.expire and set(p.keep) == {7}


def test_retain_last_and_age_cutoff():
    snaps = chain("A", "A", "A", "A", "A", start_ms=NOW - 4 * 60_000)  # one a minute, newest now
    p = plan(snaps, current=5, now_ms=NOW, older_than_ms=150_000, retain_last=2)
    assert set(p.keep) == {5, 4, 3}  # 5, 4 by count; 3 (2.0 min old) by age; 2 and 1 too old
    assert p.expire == [1, 2]


def test_a_restored_job_protects_the_previous_jobs_commit_until_it_commits_itself():
    # Job A committed 1..3; restored as job B, which committed 4 and 5; then two compactions.
    snaps = chain("A", "A", "A", "B", "B", None, None)
    p = plan(snaps, current=7, now_ms=NOW, older_than_ms=H, retain_last=1)
    assert p.flink_resume_snapshot == {"B": 5}  # A is old and superseded: not protected
    assert p.expire == [1, 2, 3, 4]


def test_every_recent_flink_job_is_protected():
    snaps = chain("A", "A", "B", None, start_ms=NOW - 3 * 60_000)
    p = plan(snaps, current=4, now_ms=NOW, older_than_ms=150_000, retain_last=1)  # A committed 2 min ago
    assert p.flink_resume_snapshot == {"B": 3, "A": 2}
    assert p.expire == [1]


def test_pinned_snapshots_stay_and_snapshots_off_the_chain_expire():
    snaps = chain("A", "A", "A") + [SnapshotInfo(9, 1, NOW - 9 * H, None)]  # a rolled-back branch
    p = plan(snaps, current=3, now_ms=NOW, older_than_ms=H, retain_last=1, pinned=[1])
    assert set(p.keep) == {3, 1}
    assert p.expire == [2, 9]


def test_no_snapshots():
    p = plan([], current=None, now_ms=NOW, older_than_ms=0, retain_last=1)
    assert p.keep == {} and p.expire == []


@pytest.mark.parametrize("kwargs", [{"retain_last": 0, "older_than_ms": 1}, {"retain_last": 1, "older_than_ms": -1}])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        plan(chain("A"), current=1, now_ms=NOW, **kwargs)


def test_files_to_delete_keeps_shared_files():
    assert files_to_delete({"m1", "d1", "d2"}, {"m2", "d2", "d3"}) == {"m1", "d1"}


def test_orphans_respect_age_and_references():
    listed = [("a", 100.0), ("b", 100.0), ("c", 990.0), ("d", 100.0)]
    assert orphans(listed, referenced={"b"}, now_s=1000.0, min_age_s=60) == ["a", "d"]


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("1h", 3600), ("3d", 259200), ("0", 0), ("1.5h", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "5w", "-1h"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)
