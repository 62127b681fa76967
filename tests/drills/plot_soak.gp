# plot_soak.gp -- the soak's curves from soak.csv (tests/drills/soak.py):
#   gnuplot -e "csv='build/drills-results/soak.csv'; faults='build/drills-results/soak-faults.csv'; png='docs/drills-soak.png'" tests/drills/plot_soak.gp
# Three panels over time: resident memory of every process; reply latency (p50, p99 of the
# replies that arrived in each interval); replies per second and the share of degraded
# replies. Grey lines mark when each fault started (soak-faults.csv).
# Columns (sampler.py COLUMNS): 1 t_s, 2-6 rss_*_kib, 9 actions_per_s, 10 replies_per_s,
# 11 latency_p50_ms, 12 latency_p99_ms, 21 error_rate, 22 in_fault.
if (!exists("csv")) csv = 'soak.csv'
if (!exists("faults")) faults = 'soak-faults.csv'
if (!exists("png")) png = 'soak.png'
if (!exists("title")) title = 'engbot soak'
set terminal pngcairo size 1200,1000 font ",10"
set output png
set datafile separator ","
set key outside right top
set grid
set xlabel "time (s)"
set y2range [0:1]
unset y2tics
set multiplot layout 3,1 title title
set ylabel "resident memory (MiB)"
set yrange [0:*]
plot faults using 1:(1) axes x1y2 with impulses lw 2 lc rgb "#bbbbbb" title "fault", \
     csv using 1:($2/1024) with lines lw 2 title "emulator", \
     csv using 1:($3/1024) with lines lw 2 title "gateway", \
     csv using 1:($4/1024) with lines lw 2 title "session-svc", \
     csv using 1:($5/1024) with lines lw 2 title "cache-svc", \
     csv using 1:($6/1024) with lines lw 2 title "queue-svc"
set ylabel "reply latency (ms)"
set logscale y
set yrange [1:*]
plot faults using 1:(1) axes x1y2 with impulses lw 2 lc rgb "#bbbbbb" title "fault", \
     csv using 1:11 with linespoints pt 7 ps 0.4 title "p50", \
     csv using 1:12 with linespoints pt 7 ps 0.4 title "p99"
unset logscale y
set yrange [0:*]
set ylabel "per second"
set y2label "degraded replies (share)"
set y2tics
plot faults using 1:(1) axes x1y2 with impulses lw 2 lc rgb "#bbbbbb" title "fault", \
     csv using 1:10 with lines lw 2 title "replies/s", \
     csv using 1:9 with lines lw 1 title "actions/s", \
     csv using 1:21 axes x1y2 with impulses lw 3 lc rgb "red" title "degraded share"
unset multiplot
