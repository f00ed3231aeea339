"""v2g_bench.verification"""
