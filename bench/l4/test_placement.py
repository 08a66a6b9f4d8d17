#!/usr/bin/env python3
"""Tests of the harnesses' placement logic (bench/l4/l4bench.py): how samples of the CPUs'
cache-line round trip are split into near and far, how a measurement is classed, and when a
measurement is taken again, and the HTTP and L4 bars per placement; and of the report's machine line,
which tells hosts apart. Run by scripts/test.sh: `python3 bench/l4/test_placement.py`."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import l4bench as l4  # noqa: E402


def run(*ns):
    return {"distance_ns": list(ns)}


class Split(unittest.TestCase):
    def test_one_placement_has_no_split(self):
        self.assertIsNone(l4.placement_split([run(60, 75, 130), run(80, 119)]))

    def test_nothing_sampled_has_no_split(self):
        self.assertIsNone(l4.placement_split([{}, run()]))

    def test_two_placements_split_at_the_geometric_mean_of_fastest_and_slowest(self):
        self.assertAlmostEqual(l4.placement_split([run(64, 70), run(470, 484, 490), run(100)]), (64 * 490) ** 0.5)

    def test_a_spread_just_under_the_factor_is_one_placement(self):
        self.assertIsNone(l4.placement_split([run(100, 299)]))
        self.assertIsNotNone(l4.placement_split([run(100, 300)]))


class Classify(unittest.TestCase):
    def test_near_far_and_mixed_against_the_split(self):
        split = 180.0
        self.assertEqual(l4.placement(run(60, 130), split), "near")
        self.assertEqual(l4.placement(run(450, 500, 180), split), "far")
        self.assertEqual(l4.placement(run(60, 470), split), "mixed")

    def test_without_split_or_samples(self):
        self.assertEqual(l4.placement(run(60, 70), None), "one")
        self.assertEqual(l4.placement({}, 180.0), "?")


class Again(unittest.TestCase):
    def measures(self, *results):
        calls = []

        def measure():
            calls.append(1)
            return results[len(calls) - 1]

        return measure, calls

    def test_a_steady_measurement_is_taken_once(self):
        measure, calls = self.measures(run(60, 70))
        moved = {"p": 0}
        self.assertEqual(l4.again_if_moved(measure, 2, moved, "p", "test"), run(60, 70))
        self.assertEqual((len(calls), moved["p"]), (1, 0))

    def test_a_moved_measurement_is_taken_again_until_steady(self):
        measure, calls = self.measures(run(60, 470), run(460, 480))
        moved = {"p": 0}
        self.assertEqual(l4.again_if_moved(measure, 2, moved, "p", "test"), run(460, 480))
        self.assertEqual((len(calls), moved["p"]), (2, 1))

    def test_retries_are_bounded_and_the_last_is_kept(self):
        measure, calls = self.measures(run(60, 470), run(470, 60), run(65, 480))
        moved = {"p": 0}
        self.assertEqual(l4.again_if_moved(measure, 2, moved, "p", "test"), run(65, 480))
        self.assertEqual((len(calls), moved["p"]), (3, 2))


class Summary(unittest.TestCase):
    def test_retakes_in_a_run_of_one_placement_are_counted_in_words_that_agree(self):
        runs = [run(60, 75), run(70, 80)]
        self.assertIn("(1 measurement during which the CPUs moved was taken again)", " ".join(l4.placement_summary(runs, None, {"p": 1})))
        self.assertIn("(3 measurements during which the CPUs moved were taken again)", " ".join(l4.placement_summary(runs, None, {"p": 1, "q": 2})))
        self.assertNotIn("taken again", " ".join(l4.placement_summary(runs, None, {"p": 0})))

    def test_retakes_in_a_run_of_two_placements_are_counted_in_words_that_agree(self):
        runs = [run(60, 75), run(470, 480)]
        split = l4.placement_split(runs)
        text = " ".join(l4.placement_summary(runs, split, {"p": 1}))
        self.assertIn("**The host moved the CPUs during this run.**", text)
        self.assertIn("besides, 1 measurement during which the CPUs moved was taken again, not counted anywhere", text)
        self.assertIn("2 measurements during which the CPUs moved were taken again", " ".join(l4.placement_summary(runs, split, {"p": 2})))
        self.assertNotIn("taken again", " ".join(l4.placement_summary(runs, split, {"p": 0})))


class L4Bars(unittest.TestCase):
    """The L4 bars per placement: a verdict needs three measurements of sluiced and of HAProxy in it."""

    @staticmethod
    def results(s_near, h_near, far=()):
        def m(ns, gpc, cps):
            return {"distance_ns": list(ns), "gbps_per_core": gpc, "cps": cps}

        near, far_ns = (60, 70), (470, 480)
        return {
            "sluiced": {"tput": [m(near, g, 0) for g in s_near] + [m(far_ns, 30.0, 0) for _ in far], "churn": [m(near, 0, c) for c in s_near]},
            "haproxy": {"tput": [m(near, g, 0) for g in h_near] + [m(far_ns, 35.0, 0) for _ in far], "churn": [m(near, 0, c) for c in h_near]},
        }

    def section(self, results):
        runs = [x for r in results.values() for k in ("tput", "churn") for x in r[k]]
        return "\n".join(l4.placement_section(runs, l4.placement_split(runs), results, {"sluiced": 0, "haproxy": 0}))

    def test_near_verdicts_from_three_measurements_each_and_none_for_too_few_far(self):
        text = self.section(self.results([40.0, 41.0, 42.0], [36.0, 37.0, 38.0], far=(1, 2)))
        self.assertIn("- Bar, CPUs near: Gbit/s per busy proxy core at least HAProxy's: **met** (1.108); churn at least 0.9 of HAProxy's: **met** (1.108).", text)
        self.assertIn("- Bar, CPUs far: Gbit/s per busy core: too few measurements (2; at least 3 needed)", text)

    def test_a_slower_sluiced_is_not_met(self):
        text = self.section(self.results([30.0, 31.0, 32.0], [36.0, 37.0, 38.0], far=(1,)))
        self.assertIn("**NOT met** (0.838)", text)
        self.assertIn("churn at least 0.9 of HAProxy's: **NOT met** (0.838)", text)

    def test_the_thresholds(self):
        self.assertIn("**met** (1.000)", l4.tput_bar(1.0))
        self.assertIn("**NOT met** (0.999)", l4.tput_bar(0.999))
        self.assertIn("**met** (0.900; x)", l4.churn_bar(0.9, "; x"))
        self.assertIn("**NOT met**", l4.churn_bar(None))


class HttpBars(unittest.TestCase):
    """The HTTP bars per placement compare sluiced and HAProxy measured in the same placement."""

    def test_the_far_verdict_uses_far_measurements_only(self):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "http"))
        import httpbench as hb

        def m(ns, us):
            return {"distance_ns": list(ns), "us_per_req": us, "rps": 1, "p50_us": 1, "p99_us": 100, "proxy_cores": 1, "cpu0_cores": 1, "errors": 0}

        near, far = (60, 70), (470, 480)
        # Near, sluiced is at 0.9 of HAProxy; far, at 0.75: only the far verdict is met.
        results = {
            "sluiced": {t: [m(near, 18.0)] * 3 + [m(far, 18.0)] * 3 for t in ("ka", "close")},
            "haproxy": {t: [m(near, 20.0)] * 3 + [m(far, 24.0)] * 3 for t in ("ka", "close")},
        }
        runs = hb.all_runs(results)
        text = "\n".join(hb.placement_section(runs, l4.placement_split(runs), results, {"sluiced": 0, "haproxy": 0}))
        self.assertIn("Bar, CPUs near: CPU per keep-alive request at most 0.8 of HAProxy's: **NOT met** (0.900)", text)
        self.assertIn("Bar, CPUs far: CPU per keep-alive request at most 0.8 of HAProxy's: **met** (0.750)", text)


class MachineLine(unittest.TestCase):
    """The report's machine line names what tells two hosts apart: the CPU's identity and a system call's cost."""

    def test_the_cpu_identity_and_the_system_call_cost_are_given(self):
        line = l4.machine_line({"syscall_ns": 197.4})
        self.assertTrue(line.startswith(f"- Machine: {os.cpu_count()} CPUs ("), line)
        self.assertIn(f"a system call (`getppid`) costs 197 ns on CPU {l4.PROXY_CPU};", line)
        self.assertNotIn("descriptor", line)
        line = l4.machine_line({"syscall_ns": 197.4, "fd_alone_ns": 200.2, "fd_shared_ns": 256.7})
        self.assertIn(f"costs 197 ns on CPU {l4.PROXY_CPU}, one on a descriptor (`fcntl`) 200 ns in a process of one thread and 257 ns in one of two;", line)
        with open("/proc/cpuinfo") as f:
            if any(ln.startswith("cpu family") for ln in f):
                self.assertIn("family ", line)

    def test_mitigations_in_effect_are_named_with_their_first_clause(self):
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            for name, text in {
                "meltdown": "Not affected",
                "spectre_v2": "Mitigation: Retpolines; IBPB: conditional; STIBP: disabled",
                "spec_rstack_overflow": "Mitigation: Safe RET",
                "mds": "Vulnerable",
            }.items():
                with open(os.path.join(d, name), "w") as f:
                    f.write(text + "\n")
            self.assertEqual(l4.mitigations(d), "; mitigations: spec_rstack_overflow (Safe RET), spectre_v2 (Retpolines)")
            self.assertEqual(l4.mitigations(os.path.join(d, "missing")), "")

    def test_no_system_call_figure_when_it_was_not_measured(self):
        self.assertNotIn("system call", l4.machine_line(None))
        self.assertNotIn("system call", l4.machine_line({}))

    def test_the_cost_is_measured_by_the_loadgen_when_there_is_one(self):
        # scripts/test.sh runs this after `cargo test`, which builds the debug binary.
        target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../target")
        # The newer of the two builds: a stale one may predate a field this test asks for.
        built = [p for p in (f"{target}/release/sluiced-loadgen", f"{target}/debug/sluiced-loadgen") if os.access(p, os.X_OK)]
        loadgen = max(built, key=os.path.getmtime, default="")
        saved = l4.LOADGEN["path"]
        try:
            l4.LOADGEN["path"] = None
            self.assertIsNone(l4.syscall_cost())
            if not os.access(loadgen, os.X_OK):
                self.skipTest("sluiced-loadgen not built")
            l4.LOADGEN["path"] = loadgen
            cost = l4.syscall_cost()
            self.assertIsNotNone(cost)
            self.assertEqual(sorted(cost), ["fd_alone_ns", "fd_shared_ns", "syscall_ns"])
            self.assertTrue(all(1.0 < ns < 1_000_000.0 for ns in cost.values()), cost)
        finally:
            l4.LOADGEN["path"] = saved


if __name__ == "__main__":
    unittest.main()
