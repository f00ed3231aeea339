"""v2g_bench.csms"""
