mkdir -p payload/sub
echo top > payload/top.txt
echo deep > payload/sub/deep.txt
tar -C payload -cf - . | zstd -q -o archive.tar.zst
rm -rf payload
