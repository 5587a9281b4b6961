mkdir payload
echo top > payload/top.txt
tar -C payload -czf download.bin .
rm -rf payload
