mkdir payload
echo top > payload/top.txt
# A fixed mtime: the archive itself lands in the image, whose digest must not depend on when this ran
# (benchmarks/corpus_digests.py compares digests of runs made at different times).
tar --mtime=@1700000000 -C payload -czf download.bin .
rm -rf payload
