"""A bounded slice of bench/fuzz.py in CI: a few thousand generated hostile requests against a real node
(`taxii-fed serve`), every input class and role; any 5xx, hang, crash or non-TAXII error body fails it.
The full run (50,000 requests) and its figures are in docs/robustness.md."""

from bench.fuzz import PROBLEMS, report, run


def test_a_slice_of_the_fuzzer_finds_no_5xx_hang_crash_or_non_taxii_error(tmp_path):
    tally = run(
        requests=3000, seconds=300, seed=20261202, connections=8, folder=tmp_path, max_content_length=4 << 20
    )
    print(report(tally, "tests/test_fuzz_slice.py"))
    assert tally.requests >= 3000
    assert {problem: tally.problems.get(problem, 0) for problem in PROBLEMS} == dict.fromkeys(PROBLEMS, 0), [
        f"{input_class}, {problem}: {examples}" for (input_class, problem), examples in tally.examples.items()
    ]
