set terminal pngcairo size 900,600 noenhanced
set output 'bench/results/scaling/efficiency.png'
set title "ringtrain-worker: efficiency against the same ranks' compute run\n(synthetic, batch 32 per rank, 1 thread per rank, cores: 2)"
set xlabel 'ranks'
set ylabel 'images/sec / compute-only images/sec (same round, median)'
set key outside right
set grid
set xtics 1
set yrange [0:*]
plot 'bench/results/scaling/raw/plot.lenet.1host.dat' using 1:5 with linespoints lw 2 pt 7 lc 1 title 'lenet 1host', 'bench/results/scaling/raw/plot.lenet.1host.dat' using 1:($6 > 0 ? $5 : 1/0) with points pt 6 ps 3 lw 2 lc rgb 'black' title 'more ranks than cores (2)', 'bench/results/scaling/raw/plot.lenet.2hosts.dat' using 1:5 with linespoints lw 2 pt 7 lc 2 title 'lenet 2hosts', 'bench/results/scaling/raw/plot.lenet.2hosts.dat' using 1:($6 > 0 ? $5 : 1/0) with points pt 6 ps 3 lw 2 lc rgb 'black' title '', 'bench/results/scaling/raw/plot.resnet20.1host.dat' using 1:5 with linespoints lw 2 pt 7 lc 3 title 'resnet20 1host', 'bench/results/scaling/raw/plot.resnet20.1host.dat' using 1:($6 > 0 ? $5 : 1/0) with points pt 6 ps 3 lw 2 lc rgb 'black' title '', 'bench/results/scaling/raw/plot.resnet20.2hosts.dat' using 1:5 with linespoints lw 2 pt 7 lc 4 title 'resnet20 2hosts', 'bench/results/scaling/raw/plot.resnet20.2hosts.dat' using 1:($6 > 0 ? $5 : 1/0) with points pt 6 ps 3 lw 2 lc rgb 'black' title ''
