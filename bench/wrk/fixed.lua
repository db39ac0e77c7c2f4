-- One request over and over: the URL's path and query, with the method from BENCH_METHOD.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
wrk.method = os.getenv("BENCH_METHOD") or "GET"
