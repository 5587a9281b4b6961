mkdir -p payload/sub
echo top > payload/top.txt
echo deep > payload/sub/deep.txt
chmod 0751 payload/sub
tar -C payload -cf plain.tar .
tar -C payload -czf gz.tgz .
tar -C payload -cjf bz.tar.bz2 .
tar -C payload -cJf xz.tar.xz .
rm -rf payload
