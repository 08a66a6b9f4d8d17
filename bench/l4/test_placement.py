#!/usr/bin/env python3
"""Tests of the harnesses' placement logic (bench/l4/l4bench.py): how samples of the CPUs'
cache-line round trip are split into near and far, how a measurement is classed, and when a
measurement is taken again; and of the report's machine line, which tells hosts apart. Run by scripts/test.sh: `python3 bench/l4/test_placement.py`."""

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


class MachineLine(unittest.TestCase):
    """The report's machine line names what tells two hosts apart: the CPU's identity and a system call's cost."""

    def test_the_cpu_identity_and_the_system_call_cost_are_given(self):
        line = l4.machine_line(197.4)
        self.assertTrue(line.startswith(f"- Machine: {os.cpu_count()} CPUs ("), line)
        self.assertIn(f"a system call (`getppid`) costs 197 ns on CPU {l4.PROXY_CPU}", line)
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

    def test_the_cost_is_measured_by_the_loadgen_when_there_is_one(self):
        # scripts/test.sh runs this after `cargo test`, which builds the debug binary.
        target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../target")
        loadgen = next((p for p in (f"{target}/release/sluiced-loadgen", f"{target}/debug/sluiced-loadgen") if os.access(p, os.X_OK)), "")
        saved = l4.LOADGEN["path"]
        try:
            l4.LOADGEN["path"] = None
            self.assertIsNone(l4.syscall_cost())
            if not os.access(loadgen, os.X_OK):
                self.skipTest("sluiced-loadgen not built")
            l4.LOADGEN["path"] = loadgen
            ns = l4.syscall_cost()
            self.assertIsNotNone(ns)
            self.assertTrue(1.0 < ns < 1_000_000.0, ns)
        finally:
            l4.LOADGEN["path"] = saved


if __name__ == "__main__":
    unittest.main()
