"""v2g_bench.scheduler"""
