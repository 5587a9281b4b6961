python3 -c 'import os; os.setxattr("tree/a.txt", "user.origin", b"context")'
