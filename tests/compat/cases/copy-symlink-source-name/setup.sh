ln -s data.txt ctx_link
ln -s ctx_link ctx_chain
ln -s subfile sub/l0
ln -s second sub/l1
ln -s baz sub/second
